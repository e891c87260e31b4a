/**
 * One sequence in a context: its tokens, its KV cells, and the operations on them (append, generate, fork,
 * truncate, dispose). A sequence belongs to its context: it is disposed with it (and with the model under it).
 */
import './disposable.js';
import type { LlamaContext, TapLayer, DecodeResult } from './context.js';
import type { LlamaModel } from './model.js';
import { AbortError, ContextFullError, DisposedError, LynxEngineUsageError, throwIfAborted } from './errors.js';
import { Sampler, isStateful, logprobs, type SamplerOptions, type TokenLogprob } from './sampler.js';
import { checkInteger, checkTokens, describe } from './validate.js';

export interface AppendOptions {
  /** Hidden states to capture while prefilling. */
  taps?: { layers: TapLayer[]; /** indices into the appended tokens; default the last one */ positions?: number[] };
  /**
   * Aborting rejects the append with AbortError and leaves the sequence as it was before the call (tokens appended
   * by finished chunks are removed again). A chunk already decoding finishes first; a queued one is dropped.
   */
  signal?: AbortSignal;
}

export interface AppendResult {
  /** Logits of the last appended position (a copy). */
  logits: Float32Array;
  /** Per tap layer, the requested positions' rows concatenated (each `nEmbd` floats, in `positions` order). */
  hidden: Map<TapLayer, Float32Array>;
}

export interface StopOptions {
  /** Stop at an end-of-generation token (EOS/EOT). Default true. */
  eog?: boolean;
  tokens?: number[];
  /** Stop once the generated text ends with one of these (non-empty) strings. */
  strings?: string[];
}

export interface GenerateOptions {
  /** Tokens to generate at most, >= 1. */
  maxTokens: number;
  sampler?: SamplerOptions;
  stop?: StopOptions;
  /** Layers to tap; by default at every generated token, or where `tapWhen` says. */
  tapLayers?: TapLayer[];
  /** Decide after sampling, before decoding, whether this token's hidden states are wanted. `text` includes it. */
  tapWhen?: (token: number, text: string) => boolean;
  /** Also return the k most likely tokens of each step's distribution with their log-probabilities. */
  topLogprobs?: number;
  /** Return the log-probability of each sampled token (under the raw logits; see GeneratedToken.logprob). */
  logprobs?: boolean;
  /**
   * Aborting ends the generator with AbortError at its next step (a decode already running finishes first; a queued
   * one is dropped). The sequence then holds the prompt and exactly the tokens yielded before the abort, and can go on.
   */
  signal?: AbortSignal;
}

export interface GeneratedToken {
  token: number;
  /** 0-based index within this generate call. */
  index: number;
  /** The text this token adds (complete UTF-8 characters only; a split character appears with the token completing it). */
  text: string;
  /** True for the token that ended generation (EOS/stop); it is not decoded into the KV cache. */
  stopped: boolean;
  /**
   * log p(token) under the model's distribution — softmax of the raw logits, before temperature and truncation, as
   * vLLM reports it (when `logprobs` or `topLogprobs` is set).
   */
  logprob?: number;
  topLogprobs?: TokenLogprob[];
  /** Hidden states of this token (when tapped). */
  hidden?: Map<TapLayer, Float32Array>;
}

export class Sequence {
  readonly context: LlamaContext;
  readonly id: number;
  readonly #history: number[] = [];
  #logitsBuf: Float32Array | undefined;
  #logitsValid = false;
  #busy = false;
  #inflight = false;
  #disposed = false;
  /**
   * The last stateful sampler (Mirostat) and its options, kept for the next generate call and copied into forks; with
   * the token it drew ahead (each step draws the next token) when the call ended at maxTokens, valid while the
   * sequence still has `at` tokens: the next call starts with it, exactly as one longer call would have.
   */
  #stateful: { key: string; sampler: Sampler; ahead?: { at: number; token: number; logprob?: number; top?: TokenLogprob[] } } | undefined;

  /** @internal Use context.createSequence() or sequence.fork(). */
  constructor(context: LlamaContext, id: number) {
    this.context = context;
    this.id = id;
  }

  /** The model whose vocabulary these tokens belong to. */
  get vocab(): LlamaModel {
    this.#check();
    return this.context.model;
  }

  /** Number of tokens in this sequence's KV cache. */
  get length(): number {
    this.#check();
    return this.#history.length;
  }

  /** The tokens of this sequence (a copy). */
  get tokens(): number[] {
    this.#check();
    return this.#history.slice();
  }

  /** True once this sequence, its context or its model was disposed. */
  get disposed(): boolean {
    return this.#disposed || this.context.disposed;
  }

  /** Logits after the last token, if this sequence's last decode produced them and it was not truncated since. */
  get lastLogits(): Float32Array | undefined {
    this.#check();
    return this.#logitsValid ? this.#logitsBuf : undefined;
  }

  /** Prefill: decode tokens into this sequence's KV cache. */
  async append(tokens: readonly number[], opts: AppendOptions = {}): Promise<AppendResult> {
    this.#enter();
    if (this.#stateful) this.#stateful.ahead = undefined; // the token drawn ahead followed the old last token
    const start = this.#history.length;
    const signal = opts.signal;
    let decoded = false;
    try {
      if (!Array.isArray(tokens)) throw new LynxEngineUsageError(`append() needs an array of token ids, got ${describe(tokens)}`);
      if (tokens.length === 0) throw new LynxEngineUsageError('append() needs at least one token (is the prompt empty?)');
      const info = this.context.model.info;
      checkTokens('append()', tokens, info.nVocab);
      this.#checkRoom(tokens.length);
      const layers = opts.taps?.layers ?? [];
      checkTapLayers(layers, info.nLayer);
      const positions = layers.length > 0 ? opts.taps?.positions ?? [tokens.length - 1] : [];
      for (const p of positions) {
        if (!Number.isInteger(p) || p < 0 || p >= tokens.length) throw new LynxEngineUsageError(`tap position ${p} is outside the ${tokens.length} appended tokens`);
      }
      throwIfAborted(signal, 'append() was aborted before it started');
      const nEmbd = info.nEmbd;
      const hidden = new Map<TapLayer, Float32Array>(layers.map((l) => [l, new Float32Array(positions.length * nEmbd)]));
      const chunk = this.context.nBatch;
      for (let begin = 0; begin < tokens.length; begin += chunk) {
        const part = tokens.slice(begin, begin + chunk);
        // Tap positions of this chunk, in the caller's order.
        const local = positions.map((p, slot) => ({ p: p - begin, slot })).filter(({ p }) => p >= 0 && p < part.length);
        this.#inflight = true;
        let r: DecodeResult;
        try {
          r = await this.context.submit({
            seq: this,
            tokens: part,
            startPos: this.#history.length,
            tapPositions: local.map((x) => x.p),
            tapLayers: local.length > 0 ? layers : [],
            logprobK: 0,
            wantLogprob: false,
            signal,
          });
        } finally {
          this.#inflight = false;
        }
        decoded = true;
        this.#history.push(...part);
        for (const [layer, rows] of r.hidden ?? []) {
          local.forEach(({ slot }, i) => hidden.get(layer)!.set(rows.subarray(i * nEmbd, (i + 1) * nEmbd), slot * nEmbd));
        }
        throwIfAborted(signal, 'append() was aborted');
      }
      return { logits: this.#logitsBuf!.slice(), hidden };
    } catch (e) {
      if (e instanceof AbortError && !this.disposed) {
        // All or nothing: the tokens of chunks that finished before the abort leave the KV cache again.
        if (decoded) this.#cut(start);
        throw new AbortError('append() was aborted: the sequence holds what it held before the call', { cause: e.cause });
      }
      throw e;
    } finally {
      this.#busy = false;
    }
  }

  /**
   * Generate token by token. Each yielded token has been decoded (its hidden states are available and the KV cache
   * holds it), except a token that stops generation.
   */
  async *generate(opts: GenerateOptions): AsyncGenerator<GeneratedToken, void, void> {
    this.#enter();
    let sampler: Sampler | undefined;
    const signal = opts?.signal;
    const aborted = () => new AbortError('generate() was aborted: the sequence holds the tokens yielded before the abort', { cause: signal!.reason });
    try {
      const model = this.context.model;
      checkGenerateOptions(opts, model.info.nLayer, model.info.nVocab);
      sampler = this.#samplerFor(opts.sampler ?? {});
      if (signal?.aborted) throw aborted();
      if (this.#history.length === 0) throw new LynxEngineUsageError('generate() needs a prompt: append tokens first');
      const k = opts.topLogprobs ?? 0;
      const wantLp = (opts.logprobs ?? false) || k > 0;
      let pending: { token: number; logprob?: number; top?: TokenLogprob[] };
      const ahead = this.#stateful?.sampler === sampler ? this.#stateful.ahead : undefined;
      if (this.#stateful) this.#stateful.ahead = undefined;
      if (ahead && ahead.at === this.#history.length && this.#logitsValid && (!wantLp || ahead.logprob !== undefined) && (ahead.top?.length ?? 0) >= k) {
        pending = ahead;
      } else if (this.#logitsValid) {
        const token = sampler.sampleFromLogits(this.#logitsBuf!);
        pending = { token, ...(wantLp ? logprobs(this.#logitsBuf!, token, k) : {}) };
      } else {
        // Logits were discarded (truncate): recompute them by decoding the last token again. Not abortable while it
        // waits, so that an abort cannot leave the sequence one token short.
        const last = this.#history.pop()!;
        const mem = this.context.memory;
        const at = this.#history.length;
        this.context.whenIdle(() => model.llama.api.llama_memory_seq_rm(mem, this.id, at, -1));
        const r = await this.#submitOne(last, sampler, [], wantLp, k);
        pending = { token: r.sampled!, logprob: r.logprob, top: r.top };
      }
      const stopTokens = new Set(opts.stop?.tokens ?? []);
      const stopEog = opts.stop?.eog ?? true;
      const stopStrings = opts.stop?.strings ?? [];
      const decoder = new TextDecoder('utf-8');
      let text = '';
      for (let index = 0; index < opts.maxTokens; index++) {
        if (signal?.aborted) throw aborted();
        const token = pending.token;
        const piece = decoder.decode(model.tokenBytes(token), { stream: true });
        text += piece;
        const stop = (stopEog && model.isEog(token)) || stopTokens.has(token) || stopStrings.some((s) => text.endsWith(s));
        if (stop) {
          yield { token, index, text: piece, stopped: true, logprob: pending.logprob, topLogprobs: pending.top };
          return;
        }
        const layers = opts.tapLayers && opts.tapLayers.length > 0 && (opts.tapWhen ? opts.tapWhen(token, text) : true) ? opts.tapLayers : [];
        this.#checkRoom(1);
        const r = await this.#submitOne(token, sampler, layers, wantLp, k, signal);
        if (signal?.aborted) {
          // Decoded but never yielded: it leaves again, so the sequence holds exactly what the caller has seen.
          this.#cut(this.#history.length - 1);
          throw aborted();
        }
        const hidden = r.hidden;
        yield { token, index, text: piece, stopped: false, logprob: pending.logprob, topLogprobs: pending.top, hidden };
        pending = { token: r.sampled!, logprob: r.logprob, top: r.top };
      }
      if (this.#stateful?.sampler === sampler) this.#stateful.ahead = { at: this.#history.length, ...pending };
    } catch (e) {
      // One message for every way an abort lands (before a step, while its decode was queued, after it).
      throw e instanceof AbortError && signal?.aborted ? aborted() : e;
    } finally {
      // A stateful sampler (Mirostat's μ) stays with the sequence for its next generate call; the rest are freed.
      if (sampler && sampler !== this.#stateful?.sampler) sampler.dispose();
      this.#busy = false;
    }
  }

  /**
   * The sampler of a generate call: a new one, or, for a stateful sampler with the same options as this sequence's
   * last one, that one (so Mirostat's μ carries on from call to call, and into forks as a copy).
   */
  #samplerFor(options: SamplerOptions): Sampler {
    const model = this.context.model;
    if (!isStateful(options)) return new Sampler(model.llama.api, options, model.info.nVocab);
    const key = JSON.stringify(options);
    if (this.#stateful?.key === key) return this.#stateful.sampler;
    this.#stateful?.sampler.dispose();
    const sampler = new Sampler(model.llama.api, options, model.info.nVocab);
    this.#stateful = { key, sampler };
    return sampler;
  }

  /** A new sequence with a copy of this one's KV state (llama_memory_seq_cp; cells are shared, not copied). */
  fork(): Sequence {
    this.#check();
    // Forking between generation steps is fine (the generator is suspended at a yield); only an in-flight decode is not.
    if (this.#inflight) throw new LynxEngineUsageError('fork() while a decode of this sequence is in flight: await it first');
    const id = this.context.allocateId();
    const mem = this.context.memory;
    const api = this.context.model.llama.api;
    // Exactly the cells of the tokens the child inherits, whenever the copy runs (see LlamaContext.whenIdle).
    const end = this.#history.length;
    this.context.whenIdle(() => api.llama_memory_seq_cp(mem, this.id, id, -1, end));
    const child = new Sequence(this.context, id);
    child.#history.push(...this.#history);
    if (this.#logitsValid) {
      child.#logitsBuf = this.#logitsBuf!.slice();
      child.#logitsValid = true;
    }
    if (this.#stateful) child.#stateful = { key: this.#stateful.key, sampler: this.#stateful.sampler.clone(), ahead: this.#stateful.ahead };
    return child;
  }

  /** Drop tokens from `length` on; the sequence continues from there. */
  truncate(length: number): void {
    this.#check();
    if (this.#busy) throw new LynxEngineUsageError('truncate() while this sequence is generating');
    if (!Number.isInteger(length) || length < 0 || length > this.#history.length) {
      throw new LynxEngineUsageError(`cannot truncate a sequence of ${this.#history.length} tokens to ${length}`);
    }
    if (length === this.#history.length) return;
    this.#cut(length);
  }

  /** Free this sequence's KV cells and its slot. Further use throws DisposedError. Calling it again does nothing. */
  dispose(): void {
    this.#stateful?.sampler.dispose();
    this.#stateful = undefined;
    if (this.disposed) return;
    this.#disposed = true;
    this.context.releaseId(this.id);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }

  /** @internal Called by the scheduler with a view of the logits of this sequence's last output row. */
  keepLogits(view: Float32Array): void {
    this.#check();
    if (!this.#logitsBuf || this.#logitsBuf.length !== view.length) this.#logitsBuf = new Float32Array(view.length);
    this.#logitsBuf.set(view);
    this.#logitsValid = true;
  }

  /** Drop tokens from `length` on, in the history now and in the KV cache before the next decode. */
  #cut(length: number): void {
    const mem = this.context.memory;
    const api = this.context.model.llama.api;
    this.context.whenIdle(() => api.llama_memory_seq_rm(mem, this.id, length, -1));
    this.#history.length = length;
    this.#logitsValid = false;
    if (this.#stateful) this.#stateful.ahead = undefined;
  }

  async #submitOne(token: number, sampler: Sampler, layers: TapLayer[], wantLp: boolean, k: number, signal?: AbortSignal): Promise<DecodeResult> {
    this.#inflight = true;
    let r: DecodeResult;
    try {
      r = await this.context.submit({
        seq: this,
        tokens: [token],
        startPos: this.#history.length,
        tapPositions: layers.length > 0 ? [0] : [],
        tapLayers: layers,
        sampler,
        logprobK: k,
        wantLogprob: wantLp,
        signal,
      });
    } finally {
      this.#inflight = false;
    }
    this.#history.push(token);
    return r;
  }

  #checkRoom(n: number): void {
    if (this.#history.length + n > this.context.nCtx) {
      throw new ContextFullError(
        `sequence ${this.id} would hold ${this.#history.length + n} tokens but the context has ${this.context.nCtx}: create the context with a larger nCtx`,
      );
    }
  }

  #check(): void {
    if (this.#disposed) throw new DisposedError(`sequence ${this.id} was disposed: create a new one with context.createSequence()`);
    if (this.context.disposed) {
      throw new DisposedError(
        `sequence ${this.id} was disposed with its ${this.context.model.disposed ? 'model' : 'context'}: ` +
          (this.context.model.disposed ? 'load the model again and create a new context' : 'create a new context'),
      );
    }
  }

  #enter(): void {
    this.#check();
    if (this.#busy) throw new LynxEngineUsageError(`sequence ${this.id} is busy: one append/generate at a time per sequence`);
    this.#busy = true;
  }
}

function checkTapLayers(layers: readonly TapLayer[], nLayer: number): void {
  if (!Array.isArray(layers)) throw new LynxEngineUsageError(`tap layers must be an array, got ${describe(layers)}`);
  for (const l of layers) {
    if (l !== 'final' && !(Number.isInteger(l) && (l as number) >= 0 && (l as number) < nLayer)) {
      throw new LynxEngineUsageError(`tap layer ${describe(l)} does not exist: use a block index from 0 to ${nLayer - 1} or 'final'`);
    }
  }
}

function checkGenerateOptions(opts: GenerateOptions, nLayer: number, nVocab: number): void {
  if (typeof opts !== 'object' || opts === null) throw new LynxEngineUsageError('generate() needs options: { maxTokens, ... }');
  checkInteger('maxTokens', opts.maxTokens, 1, Number.MAX_SAFE_INTEGER, 'the number of tokens to generate');
  if (opts.topLogprobs !== undefined) checkInteger('topLogprobs', opts.topLogprobs, 0, nVocab);
  if (opts.tapLayers !== undefined) checkTapLayers(opts.tapLayers, nLayer);
  if (opts.tapWhen !== undefined && typeof opts.tapWhen !== 'function') throw new LynxEngineUsageError('tapWhen must be a function');
  for (const s of opts.stop?.strings ?? []) {
    // '' ends every text: the first token would stop generation.
    if (typeof s !== 'string' || s === '') throw new LynxEngineUsageError(`stop strings must be non-empty strings, got ${describe(s)}`);
  }
}
