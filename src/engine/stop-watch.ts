/**
 * The text of generated tokens and the stop rules of a generation (an end-of-generation token, stop tokens, stop
 * strings), shared by the plain decode loop and the speculative and layer-exit ones so that all stop alike.
 */
import type { LlamaModel } from './model.js';
import type { StopOptions } from './sequence.js';

export class StopWatch {
  readonly #model: LlamaModel;
  readonly #decoder = new TextDecoder('utf-8');
  readonly #tokens: Set<number>;
  readonly #eog: boolean;
  readonly #strings: string[];
  #text = '';

  constructor(model: LlamaModel, stop: StopOptions | undefined) {
    this.#model = model;
    this.#tokens = new Set(stop?.tokens ?? []);
    this.#eog = stop?.eog ?? true;
    this.#strings = stop?.strings ?? [];
  }

  /** All text so far, the last pushed token's included. */
  get text(): string {
    return this.#text;
  }

  /** Add a token: the text it adds (complete UTF-8 characters only) and whether it ends the generation. */
  push(token: number): { piece: string; stop: boolean } {
    const piece = this.#decoder.decode(this.#model.tokenBytes(token), { stream: true });
    this.#text += piece;
    const text = this.#text;
    const stop = (this.#eog && this.#model.isEog(token)) || this.#tokens.has(token) || this.#strings.some((s) => text.endsWith(s));
    return { piece, stop };
  }
}
