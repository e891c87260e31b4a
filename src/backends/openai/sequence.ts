/**
 * A sequence generated on a remote server: its token ids, kept here. Appending adds ids (the server sees them with the
 * next generation, as a token-id prompt it mostly has in its prefix cache); forking copies the list; truncating cuts
 * it. Generating streams a continuation of the whole sequence from `/v1/completions`, token by token, with the local
 * engine's semantics: the same stop rules, text decoded here from the ids, log-probabilities as the server reports
 * them, and hidden states read by a local prefill of the same ids (TapMirror) where the caller asks for taps.
 */
import {
  AbortError,
  checkSamplerOptions,
  ContextFullError,
  DisposedError,
  LynxEngineUsageError,
  type AppendOptions,
  type GenerateOptions,
  type GeneratedToken,
  type TapLayer,
} from '../../engine/index.js';
import { checkInteger, checkTokens, describe } from '../../engine/validate.js';
import { UnsupportedError } from '../../util/errors.js';
import type { AppendResult, GeneratorSequence, Vocabulary } from '../generator.js';
import { VocabularyMismatchError } from './errors.js';
import type { RequestFamily } from './inflight.js';
import type { RemoteServer } from './remote.js';
import { completionStream, type StreamEvent } from './stream.js';
import { TapMirror, type TapContext } from './taps.js';

/** What a remote sequence needs from its generator. */
export interface RemoteSequenceHost {
  readonly server: RemoteServer;
  readonly vocab: Vocabulary;
  readonly taps?: TapContext;
}

export class RemoteSequence implements GeneratorSequence {
  readonly #host: RemoteSequenceHost;
  readonly #family: RequestFamily;
  readonly #tokens: number[];
  readonly #parentMirror: TapMirror | undefined;
  #mirror: TapMirror | undefined;
  #busy = false;
  #disposed = false;

  /** @internal Use generator.createSequence() or sequence.fork(). */
  constructor(host: RemoteSequenceHost, family: RequestFamily, tokens: number[] = [], parentMirror?: TapMirror) {
    this.#host = host;
    this.#family = family;
    this.#tokens = tokens;
    this.#parentMirror = parentMirror;
  }

  get vocab(): Vocabulary {
    return this.#host.vocab;
  }

  get length(): number {
    this.#check();
    return this.#tokens.length;
  }

  get tokens(): number[] {
    this.#check();
    return this.#tokens.slice();
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  async append(tokens: readonly number[], opts: AppendOptions = {}): Promise<AppendResult> {
    this.#enter();
    try {
      if (!Array.isArray(tokens)) throw new LynxEngineUsageError(`append() needs an array of token ids, got ${describe(tokens)}`);
      if (tokens.length === 0) throw new LynxEngineUsageError('append() needs at least one token (is the prompt empty?)');
      checkTokens('append()', tokens, this.vocab.info.nVocab);
      this.#checkRoom(tokens.length);
      const layers = opts.taps?.layers ?? [];
      const positions = layers.length > 0 ? (opts.taps?.positions ?? [tokens.length - 1]) : [];
      for (const p of positions) {
        if (!Number.isInteger(p) || p < 0 || p >= tokens.length) throw new LynxEngineUsageError(`tap position ${p} is outside the ${tokens.length} appended tokens`);
      }
      if (opts.signal?.aborted) throw new AbortError('append() was aborted before it started', { cause: opts.signal.reason });
      const next = [...this.#tokens, ...tokens];
      const base = this.#tokens.length;
      const hidden = layers.length > 0 ? await this.#hidden(next, positions.map((p) => base + p), layers, opts.signal) : new Map<TapLayer, Float32Array>();
      this.#tokens.push(...tokens);
      return { hidden };
    } finally {
      this.#busy = false;
    }
  }

  async *generate(opts: GenerateOptions): AsyncGenerator<GeneratedToken, void, void> {
    this.#enter();
    const signal = opts?.signal;
    const aborted = () => new AbortError('generate() was aborted: the sequence holds the tokens yielded before the abort', { cause: signal!.reason });
    let stream: AsyncGenerator<StreamEvent, void, void> | undefined;
    try {
      this.#checkGenerate(opts);
      if (signal?.aborted) throw aborted();
      if (this.#tokens.length === 0) throw new LynxEngineUsageError('generate() needs a prompt: append tokens first');
      const vocab = this.vocab;
      const k = opts.topLogprobs ?? 0;
      const wantLp = (opts.logprobs ?? false) || k > 0;
      const limit = this.#host.server.maxModelLen;
      const room = limit === undefined ? opts.maxTokens : limit - this.#tokens.length;
      if (room < 1) this.#checkRoom(1);
      const maxTokens = Math.min(opts.maxTokens, room);
      stream = completionStream(
        this.#host.server,
        { prompt: this.#tokens.slice(), maxTokens, sampler: opts.sampler ?? {}, logprobs: wantLp ? k : undefined, ignoreEos: opts.stop?.eog === false },
        this.#family,
        signal,
      );
      const stopTokens = new Set(opts.stop?.tokens ?? []);
      const stopEog = opts.stop?.eog ?? true;
      const stopStrings = opts.stop?.strings ?? [];
      const decoder = new TextDecoder('utf-8');
      let text = '';
      for (let index = 0; index < opts.maxTokens; ) {
        const next = await stream.next();
        if (signal?.aborted) throw aborted();
        if (next.done) return;
        const ev = next.value;
        if (ev.kind === 'end') {
          if (ev.finish === 'length') {
            // The server's context, not the caller's budget, ended it: the local engine says so the same way.
            if (index < opts.maxTokens && maxTokens < opts.maxTokens) this.#checkRoom(1);
            return;
          }
          // The server ended the generation without sending its stopping token (lynx serve, SGLang): it stopped at one.
          const s = vocab.info.special;
          yield { token: s.eos ?? s.eot ?? 0, index, text: '', stopped: true };
          return;
        }
        const t = ev.token;
        if (t.id >= vocab.info.nVocab) {
          throw new VocabularyMismatchError(`the server sampled token ${t.id}, outside the local vocabulary of ${vocab.info.nVocab}: the server runs another model than -m`);
        }
        const piece = decoder.decode(vocab.tokenBytes(t.id), { stream: true });
        text += piece;
        const logprob = wantLp ? t.logprob : undefined;
        const topLogprobs = k > 0 ? (t.top ?? []).slice(0, k) : undefined;
        const stop = (stopEog && vocab.isEog(t.id)) || stopTokens.has(t.id) || stopStrings.some((s) => text.endsWith(s));
        if (stop) {
          yield { token: t.id, index, text: piece, stopped: true, logprob, topLogprobs };
          return;
        }
        const layers = opts.tapLayers && opts.tapLayers.length > 0 && (opts.tapWhen ? opts.tapWhen(t.id, text) : true) ? opts.tapLayers : [];
        const hidden = layers.length > 0 ? await this.#hidden([...this.#tokens, t.id], [this.#tokens.length], layers, signal) : undefined;
        if (signal?.aborted) throw aborted();
        this.#tokens.push(t.id);
        yield { token: t.id, index, text: piece, stopped: false, logprob, topLogprobs, hidden };
        index++;
      }
    } catch (e) {
      // One message for every way an abort lands (waiting for a slot, mid-stream, in a tap's prefill).
      throw signal?.aborted ? aborted() : e;
    } finally {
      // Closes the request of a generation left early (an exit, a stop): the server stops generating for it.
      await stream?.return();
      this.#busy = false;
    }
  }

  fork(): RemoteSequence {
    this.#check();
    return new RemoteSequence(this.#host, this.#family, this.#tokens.slice(), this.#mirror ?? this.#parentMirror);
  }

  truncate(length: number): void {
    this.#check();
    if (this.#busy) throw new LynxEngineUsageError('truncate() while this sequence is generating');
    if (!Number.isInteger(length) || length < 0 || length > this.#tokens.length) {
      throw new LynxEngineUsageError(`cannot truncate a sequence of ${this.#tokens.length} tokens to ${length}`);
    }
    this.#tokens.length = length;
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#mirror?.dispose();
    this.#mirror = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async #hidden(tokens: readonly number[], positions: number[], layers: TapLayer[], signal?: AbortSignal): Promise<Map<TapLayer, Float32Array>> {
    const taps = this.#host.taps;
    if (!taps) throw new UnsupportedError('hidden states of a remote generator are read by a local prefill: give it a local context for taps');
    this.#mirror ??= new TapMirror(taps, this.#parentMirror);
    return this.#mirror.hidden(tokens, positions, layers, signal);
  }

  #checkGenerate(opts: GenerateOptions): void {
    if (typeof opts !== 'object' || opts === null) throw new LynxEngineUsageError('generate() needs options: { maxTokens, ... }');
    checkInteger('maxTokens', opts.maxTokens, 1, Number.MAX_SAFE_INTEGER, 'the number of tokens to generate');
    if (opts.sampler !== undefined) checkSamplerOptions(opts.sampler);
    const maxTop = this.#host.server.maxTopLogprobs;
    if (opts.topLogprobs !== undefined) checkInteger('topLogprobs', opts.topLogprobs, 0, maxTop, `the server hands out at most ${maxTop} (vLLM: --max-logprobs)`);
    if (opts.tapLayers !== undefined && opts.tapLayers.length > 0 && !this.#host.taps) {
      throw new UnsupportedError('hidden states of a remote generator are read by a local prefill: give it a local context for taps');
    }
    for (const s of opts.stop?.strings ?? []) {
      if (typeof s !== 'string' || s === '') throw new LynxEngineUsageError(`stop strings must be non-empty strings, got ${describe(s)}`);
    }
  }

  #checkRoom(n: number): void {
    const limit = this.#host.server.maxModelLen;
    if (limit !== undefined && this.#tokens.length + n > limit) {
      throw new ContextFullError(
        `the sequence would hold ${this.#tokens.length + n} tokens but the server's model takes ${limit} (${this.#host.server.url}): ` +
          'lower --max-tokens, or start the server with a longer context (vLLM --max-model-len, llama-server -c)',
      );
    }
  }

  #check(): void {
    if (this.#disposed) throw new DisposedError('this remote sequence was disposed: create a new one with generator.createSequence()');
  }

  #enter(): void {
    this.#check();
    if (this.#busy) throw new LynxEngineUsageError('this sequence is busy: one append/generate at a time per sequence');
    this.#busy = true;
  }
}
