/**
 * A generator that counts what goes through it: tokens appended without sampling (prefilled: prompts, cues) and
 * tokens sampled (decoded: every token `generate` hands out, the one that stops generation included), over every
 * sequence created from it and their forks. Wrap a problem's generator in one to measure a method's real work, the
 * figure its reported `TokenCounts.decoded` and `prefilled` must equal (the tests check every method this way).
 */
import type { AppendOptions, GenerateOptions, GeneratedToken } from '../engine/index.js';
import type { AppendResult, Capabilities, Generator, GeneratorSequence, Vocabulary } from './generator.js';

export class CountingGenerator implements Generator {
  decoded = 0;
  prefilled = 0;

  constructor(readonly inner: Generator) {}

  get name(): string {
    return this.inner.name;
  }

  get capabilities(): Readonly<Capabilities> {
    return this.inner.capabilities;
  }

  get vocab(): Vocabulary {
    return this.inner.vocab;
  }

  capacity(): { contextTokens: number; freeSequences: number } {
    return this.inner.capacity();
  }

  createSequence(): GeneratorSequence {
    return new CountingSequence(this.inner.createSequence(), this);
  }

  /** Start counting from zero. */
  reset(): void {
    this.decoded = 0;
    this.prefilled = 0;
  }
}

class CountingSequence implements GeneratorSequence {
  constructor(
    private readonly inner: GeneratorSequence,
    private readonly counter: CountingGenerator,
  ) {}

  get vocab(): Vocabulary {
    return this.inner.vocab;
  }

  get length(): number {
    return this.inner.length;
  }

  get tokens(): number[] {
    return this.inner.tokens;
  }

  get disposed(): boolean {
    return this.inner.disposed;
  }

  append(tokens: readonly number[], opts?: AppendOptions): Promise<AppendResult> {
    this.counter.prefilled += tokens.length;
    return this.inner.append(tokens, opts);
  }

  async *generate(opts: GenerateOptions): AsyncGenerator<GeneratedToken, void, void> {
    for await (const t of this.inner.generate(opts)) {
      this.counter.decoded++;
      yield t;
    }
  }

  fork(): GeneratorSequence {
    return new CountingSequence(this.inner.fork(), this.counter);
  }

  truncate(length: number): void {
    this.inner.truncate(length);
  }

  dispose(): void {
    this.inner.dispose();
  }
}
