/**
 * A generator whose every generation runs with one decoding mode (speculative decoding, or layer exit): the
 * sequences it hands out, and their forks, pass the mode to `generate`, so a method written against the Generator
 * seam (a rollout, LYNX's probes, DEER's trial answers) drafts and verifies without knowing it.
 */
import type { DecodingMode, GenerateOptions } from '../engine/index.js';
import type { Generator, GeneratorSequence } from './generator.js';

export class DecodingGenerator implements Generator {
  readonly name: string;

  constructor(
    readonly inner: Generator,
    readonly mode: DecodingMode,
  ) {
    this.name = `${inner.name} + ${mode.name}`;
  }

  get capabilities() {
    return this.inner.capabilities;
  }

  get vocab() {
    return this.inner.vocab;
  }

  capacity() {
    return this.inner.capacity();
  }

  createSequence(): GeneratorSequence {
    return withMode(this.inner.createSequence(), this.mode);
  }
}

function withMode(seq: GeneratorSequence, mode: DecodingMode): GeneratorSequence {
  return {
    get vocab() {
      return seq.vocab;
    },
    get length() {
      return seq.length;
    },
    get tokens() {
      return seq.tokens;
    },
    get disposed() {
      return seq.disposed;
    },
    append: (tokens, opts) => seq.append(tokens, opts),
    // A call that names its own decoding keeps it.
    generate: (opts: GenerateOptions) => seq.generate({ ...opts, decoding: opts.decoding ?? mode }),
    fork: () => withMode(seq.fork(), mode),
    truncate: (length) => seq.truncate(length),
    dispose: () => seq.dispose(),
  };
}
