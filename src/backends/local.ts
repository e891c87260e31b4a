/** The local llama.cpp engine as a generator: one context's sequences, every capability. */
import type { LlamaContext } from '../engine/index.js';
import type { Capabilities, Generator, GeneratorSequence } from './generator.js';

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
