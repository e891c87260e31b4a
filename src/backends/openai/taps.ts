/**
 * Hidden states of remotely generated tokens, read locally: each remote sequence that is tapped keeps a mirror, a
 * sequence of a local context that holds a prefix of the same token ids. A tap brings the mirror up to the tapped
 * position in one prefill (the tokens generated since the last tap, batched with other mirrors' by the engine) and
 * reads the rows there; every token is decoded locally once, as a prefill, which costs a fraction of generating it.
 *
 * A prefill computes the same hidden states as the token-by-token decode the local engine taps during generation, up
 * to float rounding (~1e-6 in f32): batching changes the order of sums, not the function.
 */
import { ContextFullError, LynxEngineUsageError, type LlamaContext, type Sequence, type TapLayer } from '../../engine/index.js';

/** The local context mirrors live in, and a queue for its sequence slots. */
export class TapContext {
  readonly #waiters: (() => void)[] = [];

  constructor(readonly context: LlamaContext) {}

  /** A sequence for a mirror: a fork of `from` (its cells shared) when it can be, else an empty one; waits for a slot. */
  async open(from?: Sequence): Promise<{ seq: Sequence; forked: boolean }> {
    for (;;) {
      if (this.context.freeSlots > 0) {
        if (from && !from.disposed) {
          try {
            return { seq: from.fork(), forked: true };
          } catch (e) {
            // A fork of a mirror that is decoding right now: start from scratch instead.
            if (!(e instanceof LynxEngineUsageError)) throw e;
          }
        }
        try {
          return { seq: this.context.createSequence(), forked: false };
        } catch (e) {
          if (!(e instanceof ContextFullError)) throw e;
        }
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  close(seq: Sequence): void {
    seq.dispose();
    this.#waiters.shift()?.();
  }

  dispose(): void {
    this.context.dispose();
    for (const w of this.#waiters.splice(0)) w();
  }
}

export class TapMirror {
  #seq: Sequence | undefined;
  /** The token ids the local sequence holds (its own `tokens` copies on every read). */
  #known: number[] = [];

  constructor(
    private readonly taps: TapContext,
    /** The mirror of the sequence this one was forked from, if any: its cells are shared rather than decoded again. */
    private readonly parent?: TapMirror,
  ) {}

  /** Rows of `layers` at `positions` (indices into `tokens`) of the sequence `tokens`, as Sequence.append returns them. */
  async hidden(tokens: readonly number[], positions: readonly number[], layers: TapLayer[], signal?: AbortSignal): Promise<Map<TapLayer, Float32Array>> {
    if (!this.#seq) {
      const from = this.parent ? this.parent.#seq : undefined;
      const { seq, forked } = await this.taps.open(from);
      this.#seq = seq;
      this.#known = forked ? this.parent!.#known.slice() : [];
    }
    const seq = this.#seq;
    let common = 0;
    const max = Math.min(this.#known.length, tokens.length);
    while (common < max && this.#known[common] === tokens[common]) common++;
    // A position already in the cache was decoded without a tap: decode it again from there.
    const start = Math.min(common, ...positions);
    if (start < this.#known.length) {
      seq.truncate(start);
      this.#known.length = start;
    }
    const span = tokens.slice(start);
    const r = await seq.append(span, { taps: { layers, positions: positions.map((p) => p - start) }, signal });
    this.#known.push(...span);
    return r.hidden;
  }

  dispose(): void {
    if (this.#seq && !this.#seq.disposed) this.taps.close(this.#seq);
    this.#seq = undefined;
  }
}
