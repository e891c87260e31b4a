/**
 * One sequence in a context: its tokens, its KV cells, and the operations on them (append, generate, fork,
 * truncate, dispose). A sequence belongs to its context: it is disposed with it (and with the model under it).
 */
import './disposable.js';
import type { LlamaContext, TapLayer, DecodeResult, DepthExit } from './context.js';
import type { DecodingMode } from './speculative/mode.js';
import { StopWatch } from './stop-watch.js';
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
  /**
   * How tokens are produced (src/engine/speculative/): speculative decoding with a draft (lossless) or layer exit
   * with early-exit heads (lossy). Default: the full model, one token per decode.
   */
  decoding?: DecodingMode;
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
  /** Speculative decoding: the draft proposed this token and the full model accepted it. */
  drafted?: boolean;
  /** Layer exit (lossy): the head after this block chose the token, not the full model. */
  exitLayer?: number;
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
  /**
   * Layer exit (lossy) leaves tokens whose KV cells hold only the first blocks: the tail from #partialFrom on, to block
   * #partialDepth at least (-1: no cells at all). The next full-depth decode of this sequence decodes that tail again in
   * front of its own tokens, so every later token attends to complete cells. -1: no such tail.
   */
  #partialFrom = -1;
  #partialDepth = Infinity;

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
    let tail: number[] = [];
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
      // A partial-depth tail is decoded again in front of the new tokens (its tokens' positions come first).
      tail = this.#takeTail();
      const all = tail.length > 0 ? [...tail, ...tokens] : tokens;
      for (let begin = 0; begin < all.length; begin += chunk) {
        const part = all.slice(begin, begin + chunk);
        // Tap positions of this chunk, in the caller's order.
        const local = positions.map((p, slot) => ({ p: p + tail.length - begin, slot })).filter(({ p }) => p >= 0 && p < part.length);
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
        if (decoded) this.#cut(start - tail.length);
        this.#restoreTail(tail);
        throw new AbortError('append() was aborted: the sequence holds what it held before the call', { cause: e.cause });
      }
      if (!decoded) this.#restoreTail(tail);
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
      const stops = new StopWatch(model, opts.stop);
      if (opts.decoding) {
        // Speculative decoding or layer exit: the mode produces the tokens, under the same contract as below.
        yield* opts.decoding.run({ seq: this, opts, sampler, first: pending, stops, wantLogprob: wantLp, topLogprobs: k });
        return;
      }
      for (let index = 0; index < opts.maxTokens; index++) {
        if (signal?.aborted) throw aborted();
        const token = pending.token;
        const { piece, stop } = stops.push(token);
        const text = stops.text;
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
    child.#partialFrom = this.#partialFrom;
    child.#partialDepth = this.#partialDepth;
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

  // ---- @internal: what speculative decoding and layer exit (src/engine/speculative/) decode with ----

  /**
   * @internal Decode `tokens` at full depth after this sequence's tokens, add them to it, and return the logits of
   * every one of them (rows of nVocab) and, at `taps.positions` (indices into `tokens`), the hidden states.
   */
  async extend(
    tokens: readonly number[],
    opts: { taps?: { layers: TapLayer[]; positions: number[] }; signal?: AbortSignal } = {},
  ): Promise<{ rows: Float32Array; hidden?: Map<TapLayer, Float32Array> }> {
    this.#check();
    this.#checkRoom(tokens.length);
    const tail = this.#takeTail();
    const taps = opts.taps && opts.taps.layers.length > 0 && opts.taps.positions.length > 0 ? opts.taps : undefined;
    this.#inflight = true;
    let r: DecodeResult;
    try {
      r = await this.context.submit({
        seq: this,
        tokens: [...tail, ...tokens],
        startPos: this.#history.length,
        tapPositions: taps ? taps.positions.map((p) => p + tail.length) : [],
        tapLayers: taps ? taps.layers : [],
        allLogits: true,
        logprobK: 0,
        wantLogprob: false,
        signal: opts.signal,
      });
    } catch (e) {
      this.#restoreTail(tail);
      throw e;
    } finally {
      this.#inflight = false;
    }
    this.#history.push(...tail, ...tokens);
    const nVocab = this.context.model.info.nVocab;
    return { rows: r.rows!.subarray(tail.length * nVocab), hidden: r.hidden };
  }

  /**
   * @internal Decode `tokens` at positions from `at` (at or past the sequence's end) through the first blocks only
   * (see DepthExit); they are not added to the sequence, and their KV cells stay until dropFrom or adopt. Over a
   * partial-depth tail the decode stops at the tail's depth at the latest: deeper blocks would attend to cells that
   * hold nothing.
   */
  async probe(tokens: readonly number[], at: number, exit: DepthExit, signal?: AbortSignal): Promise<DecodeResult> {
    this.#check();
    if (at < this.#history.length) throw new LynxEngineUsageError(`internal: probe at ${at} inside the sequence (${this.#history.length} tokens)`);
    this.#checkRoom(at - this.#history.length + tokens.length);
    let checked = exit;
    if (this.#partialFrom >= 0) {
      const cap = this.#partialDepth;
      const layers = exit.layers.filter((l) => l <= cap);
      if (cap < 0 || layers.length === 0) throw new LynxEngineUsageError(`internal: probe over a tail of depth ${cap} (catch up first)`);
      const last = layers[layers.length - 1]!;
      // The caller's decision first (a confident head there is still chosen), then the stop the tail needs.
      checked = { layers, decide: (layer, h) => (exit.decide ? exit.decide(layer, h) : true) || layer === last };
    }
    this.#inflight = true;
    try {
      return await this.context.submit({ seq: this, tokens: [...tokens], startPos: at, tapPositions: [], tapLayers: [], exit: checked, logprobK: 0, wantLogprob: false, signal });
    } finally {
      this.#inflight = false;
    }
  }

  /** @internal Remove the KV cells of positions from `at` on, at or past the sequence's end (probed positions). */
  dropFrom(at: number): void {
    this.#check();
    if (at < this.#history.length) throw new LynxEngineUsageError(`internal: dropFrom(${at}) inside the sequence (${this.#history.length} tokens)`);
    const mem = this.context.memory;
    const api = this.context.model.llama.api;
    this.context.whenIdle(() => api.llama_memory_seq_rm(mem, this.id, at, -1));
  }

  /**
   * @internal Make probed tokens part of the sequence as they were decoded: to block `depth` (then they join the
   * partial-depth tail) or at full depth (depth Infinity), with `logits` the logits after the last of them.
   */
  adopt(tokens: readonly number[], depth: number, logits?: Float32Array): void {
    this.#check();
    if (depth === Infinity && this.#partialFrom < 0) {
      this.#history.push(...tokens);
      if (logits) this.keepLogits(logits);
      else this.#logitsValid = false;
      return;
    }
    if (this.#partialFrom < 0) this.#partialFrom = this.#history.length;
    this.#partialDepth = Math.min(this.#partialDepth, depth);
    this.#history.push(...tokens);
    this.#logitsValid = false;
  }

  /** @internal The depth of this sequence's partial tail: its start and block, or null when every cell is complete. */
  get partialTail(): { from: number; depth: number } | null {
    this.#check();
    return this.#partialFrom < 0 ? null : { from: this.#partialFrom, depth: this.#partialDepth };
  }

  /** @internal Cut the sequence back to `length` tokens in the middle of a generation (tokens decoded but not yielded). */
  cutTo(length: number, logitsAfter?: Float32Array): void {
    this.#check();
    if (length >= this.#history.length) return;
    this.#cut(length);
    if (logitsAfter) this.keepLogits(logitsAfter);
  }

  /** Drop tokens from `length` on, in the history now and in the KV cache before the next decode. */
  #cut(length: number): void {
    const mem = this.context.memory;
    const api = this.context.model.llama.api;
    this.context.whenIdle(() => api.llama_memory_seq_rm(mem, this.id, length, -1));
    this.#history.length = length;
    this.#logitsValid = false;
    if (this.#stateful) this.#stateful.ahead = undefined;
    if (this.#partialFrom >= length) {
      this.#partialFrom = -1;
      this.#partialDepth = Infinity;
    }
  }

  /** Take the partial-depth tail out of the sequence (its cells removed) to decode it again at full depth; [] when none. */
  #takeTail(): number[] {
    if (this.#partialFrom < 0) return [];
    const tail = this.#history.slice(this.#partialFrom);
    this.#cut(this.#partialFrom);
    return tail;
  }

  /** Put back a tail taken by #takeTail whose decode failed: its tokens stay, with no cells (depth -1) until decoded again. */
  #restoreTail(tail: number[]): void {
    if (tail.length === 0 || this.disposed) return;
    this.#partialFrom = this.#history.length;
    this.#partialDepth = -1;
    this.#history.push(...tail);
  }

  async #submitOne(token: number, sampler: Sampler, layers: TapLayer[], wantLp: boolean, k: number, signal?: AbortSignal): Promise<DecodeResult> {
    const tail = this.#takeTail();
    this.#inflight = true;
    let r: DecodeResult;
    try {
      r = await this.context.submit({
        seq: this,
        tokens: [...tail, token],
        startPos: this.#history.length,
        tapPositions: layers.length > 0 ? [tail.length] : [],
        tapLayers: layers,
        sampler,
        logprobK: k,
        wantLogprob: wantLp,
        signal,
      });
    } catch (e) {
      this.#restoreTail(tail);
      throw e;
    } finally {
      this.#inflight = false;
    }
    this.#history.push(...tail, token);
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
