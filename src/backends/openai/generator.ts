/**
 * A generator on an OpenAI-compatible server with hidden states read locally (LYNX's vLLM-hybrid, on the backend
 * seam): the server samples every token (traces, forced exits, probes: all continuations of token-id prompts, cheap
 * where it caches prefixes), the local model tokenizes, renders the chat template and, where a method taps, prefills
 * the same ids to read hidden states. Every method runs on it unchanged.
 */
import { LlamaContext, MAX_SEQUENCES, type LlamaModel } from '../../engine/index.js';
import type { Capabilities, Generator, GeneratorFactory, GeneratorSequence, Vocabulary } from '../generator.js';
import { InvalidInputError } from '../../util/errors.js';
import { RequestFamily } from './inflight.js';
import type { RemoteServer } from './remote.js';
import { RemoteSequence } from './sequence.js';
import { TapContext } from './taps.js';

export class OpenAIGenerator implements Generator {
  readonly name: string;
  readonly capabilities: Readonly<Capabilities>;

  /** `taps`: a local context of `vocab`'s model for hidden states; without it the generator has none. */
  constructor(
    readonly server: RemoteServer,
    readonly vocab: Vocabulary,
    readonly taps?: TapContext,
  ) {
    if (taps && taps.context.model !== vocab) throw new InvalidInputError('the tap context must belong to the vocabulary\'s model');
    this.name = `openai (${server.url}, ${server.model})`;
    this.capabilities = Object.freeze({ hiddenStates: taps !== undefined, fork: true, logprobs: true, topLogprobs: server.maxTopLogprobs });
  }

  /**
   * A remote server's KV cache is not ours to see: the room reported is what the in-flight limit lets this client use
   * (that many sequences of the server's context length), which is how methods that size their own concurrency by it
   * (DeepConf's parallel traces) stay within the limit.
   */
  capacity(): { contextTokens: number; freeSequences: number } {
    const n = this.server.limit.max;
    return { contextTokens: n * (this.server.maxModelLen ?? 1 << 20), freeSequences: n };
  }

  createSequence(): GeneratorSequence {
    return new RemoteSequence(this, new RequestFamily());
  }
}

/**
 * Remote generators for batch jobs: one connected server for all, and per call a local context for the hidden
 * states of the rollouts it serves (a trace's mirror each; forks are not tapped by the builder).
 */
export function openAIGenerators(server: RemoteServer, model: LlamaModel, o: { threads?: number } = {}): GeneratorFactory {
  return {
    info: server.describe(),
    check(needs) {
      const limit = server.maxModelLen;
      if (limit !== undefined && needs.longestSequence > limit) {
        throw new InvalidInputError(
          `a rollout may need ${needs.longestSequence} tokens (longest prompt + --max-tokens + exit cue and answer) but ${server.model} at ${server.url} takes ${limit}: ` +
            'lower --max-tokens, or start the server with a longer context (vLLM --max-model-len, llama-server -c)',
        );
      }
    },
    create(needs) {
      const context = new LlamaContext(model, {
        nCtx: needs.rollouts * needs.longestSequence,
        nSeqMax: Math.min(MAX_SEQUENCES, needs.rollouts * 2),
        nBatch: 512,
        threads: o.threads,
        // As the local builder's contexts: features that do not depend on what else is prefilled beside them.
        kvType: 'f32',
        flashAttention: false,
      });
      const taps = new TapContext(context);
      return { generator: new OpenAIGenerator(server, model, taps), dispose: () => taps.dispose() };
    },
  };
}
