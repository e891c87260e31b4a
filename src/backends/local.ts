/** The local llama.cpp engine as a generator: one context's sequences, every capability. */
import { LlamaContext, type LlamaModel } from '../engine/index.js';
import type { Capabilities, Generator, GeneratorFactory, GeneratorSequence } from './generator.js';

/** llama.cpp hands out the whole distribution; this bound only keeps requests sane. */
const MAX_TOP_LOGPROBS = 1024;

export class LocalGenerator implements Generator {
  readonly name = 'local';
  readonly capabilities: Readonly<Capabilities> = Object.freeze({ hiddenStates: true, fork: true, logprobs: true, topLogprobs: MAX_TOP_LOGPROBS });

  constructor(readonly context: LlamaContext) {}

  get vocab() {
    return this.context.model;
  }

  capacity(): { contextTokens: number; freeSequences: number } {
    return { contextTokens: this.context.nCtx, freeSequences: this.context.freeSlots };
  }

  createSequence(): GeneratorSequence {
    return this.context.createSequence();
  }
}

/**
 * Local generators for batch jobs: a context per call, sized for what it must hold, with batch-invariant numerics (an
 * F32 KV cache, no flash attention), so a rollout's tokens and features depend only slightly, or (one rollout per
 * context) not at all, on what decodes beside it.
 */
export function localGenerators(model: LlamaModel, o: { threads?: number } = {}): GeneratorFactory {
  return {
    create(needs) {
      const context = new LlamaContext(model, {
        nCtx: needs.rollouts * needs.tokensPerRollout,
        nSeqMax: needs.rollouts * needs.sequencesPerRollout,
        nBatch: 512,
        threads: o.threads,
        kvType: 'f32',
        flashAttention: false,
      });
      return { generator: new LocalGenerator(context), dispose: () => context.dispose() };
    },
  };
}
