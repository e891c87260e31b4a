/**
 * The seam between the reasoning methods and whatever generates tokens: the local llama.cpp engine today, an
 * OpenAI-compatible server (vLLM, SGLang, llama.cpp's server) with hidden states read locally tomorrow. Methods are
 * written against `Generator` and `GeneratorSequence`, declare the capabilities they need, and refuse clearly on a
 * generator that lacks one, before any work is done.
 *
 * The shapes are the engine's own (`Sequence` satisfies `GeneratorSequence`), so the local generator adds nothing to
 * the decode loop.
 */
import type { AppendOptions, GenerateOptions, GeneratedToken, LlamaModel, TapLayer } from '../engine/index.js';
import { UnsupportedError } from '../util/errors.js';

/** What a generator can do beyond sampling text. */
export interface Capabilities {
  /** Hidden states of any layer at chosen positions (prefill and generation taps). */
  hiddenStates: boolean;
  /** A cheap copy of a sequence's state (shared KV cells locally; prefix caching on a server). */
  fork: boolean;
  /** The log-probability of each sampled token. */
  logprobs: boolean;
  /** The largest k of top-k log-probabilities per step; 0 when the generator has none. */
  topLogprobs: number;
}

export type CapabilityName = keyof Capabilities;

/** What a method asks of a generator: a capability, or at least k top log-probabilities per step. */
export type Requirement = Exclude<CapabilityName, 'topLogprobs'> | { topLogprobs: number };

/** The tokenizer, chat template and shape a method reads: the local model's (a remote generator shares its vocabulary). */
export type Vocabulary = Pick<LlamaModel, 'tokenize' | 'detokenize' | 'tokenBytes' | 'isEog' | 'info'>;

export interface AppendResult {
  /** Per tap layer, the requested positions' rows concatenated (each `nEmbd` floats, in `positions` order). */
  hidden: Map<TapLayer, Float32Array>;
  /**
   * Logits after the last appended token, where the generator returns them (the local one does): what a method
   * scoring text under a model reads (SplitReason's logprob subselect).
   */
  logits?: Float32Array;
}

/** One sequence of tokens a generator extends. */
export interface GeneratorSequence {
  /** The vocabulary its token ids belong to. */
  readonly vocab: Vocabulary;
  /** Number of tokens in the sequence. */
  readonly length: number;
  /** Its tokens (a copy). */
  readonly tokens: number[];
  readonly disposed: boolean;
  /** Add tokens (a prompt, an exit cue) without sampling; with taps, return their hidden states. */
  append(tokens: readonly number[], opts?: AppendOptions): Promise<AppendResult>;
  /** Sample tokens one by one; each yielded token is part of the sequence except one that stops generation. */
  generate(opts: GenerateOptions): AsyncGenerator<GeneratedToken, void, void>;
  /** A new sequence with the same tokens (needs the `fork` capability). */
  fork(): GeneratorSequence;
  /** Drop tokens from `length` on. */
  truncate(length: number): void;
  dispose(): void;
}

export interface Generator {
  /** Short name for messages and records: `local`, `openai (http://...)`. */
  readonly name: string;
  readonly capabilities: Readonly<Capabilities>;
  readonly vocab: Vocabulary;
  /** Tokens one sequence may hold, and sequences that can be created now (forks included). */
  capacity(): { contextTokens: number; freeSequences: number };
  createSequence(): GeneratorSequence;
}

/** What a batch job (the dataset builder) asks of the generators it creates. */
export interface GeneratorNeeds {
  /** Rollouts the generator serves at once. */
  rollouts: number;
  /** KV cells one rollout may take locally: its trace and the forks of its forced exits. */
  tokensPerRollout: number;
  /** Sequences one rollout may hold at once (its trace and its forks). */
  sequencesPerRollout: number;
  /** The longest single sequence: prompt, trace, exit cue and answer. */
  longestSequence: number;
}

/** Makes generators for a job: the local engine (a context per call) or a remote server (hidden states read locally). */
export interface GeneratorFactory {
  /** What a dataset manifest records about the generator (absent for the local engine, whose manifests predate this). */
  readonly info?: Record<string, unknown>;
  /** Refuse, before any work, needs the generator cannot meet (a sequence longer than the server's context). */
  check?(needs: GeneratorNeeds): void;
  create(needs: GeneratorNeeds): { generator: Generator; dispose(): void };
}

function describe(req: Requirement): string {
  if (typeof req === 'string') return { hiddenStates: 'hidden states', fork: 'sequence forks', logprobs: 'token log-probabilities' }[req];
  return `top-${req.topLogprobs} log-probabilities per token`;
}

function satisfied(caps: Readonly<Capabilities>, req: Requirement): boolean {
  return typeof req === 'string' ? caps[req] : caps.topLogprobs >= req.topLogprobs;
}

/** Throw an UnsupportedError naming what `who` needs and the generator does not have; do nothing when all is there. */
export function requireCapabilities(generator: Generator, requirements: readonly Requirement[], who: string): void {
  const missing = requirements.filter((r) => !satisfied(generator.capabilities, r));
  if (missing.length > 0) {
    throw new UnsupportedError(`${who} needs ${missing.map(describe).join(' and ')}, which the ${generator.name} generator does not provide`);
  }
}
