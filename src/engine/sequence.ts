/**
 * One sequence in a context: its tokens, its KV cells, and the operations on them (append, generate, fork,
 * truncate, dispose).
 */
import type { LlamaContext, TapLayer, DecodeResult } from './context.js';
import type { LlamaModel } from './model.js';
import { ContextFullError, DisposedError, LynxEngineUsageError } from './errors.js';
import { Sampler, logprobs, type SamplerOptions, type TokenLogprob } from './sampler.js';

export interface AppendOptions {
  /** Hidden states to capture while prefilling. */
  taps?: { layers: TapLayer[]; /** indices into the appended tokens; default the last one */ positions?: number[] };
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
  /** Stop once the generated text ends with one of these. */
  strings?: string[];
}

export interface GenerateOptions {
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
  private readonly history: number[] = [];
  private logitsBuf: Float32Array | undefined;
  private logitsValid = false;
  private busy = false;
  private inflight = false;
  private isDisposed = false;

  /** @internal Use context.createSequence() or sequence.fork(). */
  constructor(context: LlamaContext, id: number) {
    this.context = context;
    this.id = id;
  }

  /** The model whose vocabulary these tokens belong to. */
  get vocab(): LlamaModel {
    return this.context.model;
  }

  /** Number of tokens in this sequence's KV cache. */
  get length(): number {
    return this.history.length;
  }

  /** The tokens of this sequence (a copy). */
  get tokens(): number[] {
    return this.history.slice();
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  /** Logits after the last token, if this sequence's last decode produced them and it was not truncated since. */
  get lastLogits(): Float32Array | undefined {
    return this.logitsValid ? this.logitsBuf : undefined;
  }

  /** Prefill: decode tokens into this sequence's KV cache. */
  async append(tokens: readonly number[], opts: AppendOptions = {}): Promise<AppendResult> {
    this.enter();
    try {
      if (tokens.length === 0) throw new LynxEngineUsageError('append() needs at least one token');
      this.checkRoom(tokens.length);
      const layers = opts.taps?.layers ?? [];
      const positions = layers.length > 0 ? opts.taps?.positions ?? [tokens.length - 1] : [];
      for (const p of positions) {
        if (!Number.isInteger(p) || p < 0 || p >= tokens.length) throw new LynxEngineUsageError(`tap position ${p} is outside the ${tokens.length} appended tokens`);
      }
      const nEmbd = this.context.model.info.nEmbd;
      const hidden = new Map<TapLayer, Float32Array>(layers.map((l) => [l, new Float32Array(positions.length * nEmbd)]));
      const chunk = this.context.nBatch;
      for (let start = 0; start < tokens.length; start += chunk) {
        const part = tokens.slice(start, start + chunk);
        // Tap positions of this chunk, in the caller's order.
        const local = positions.map((p, slot) => ({ p: p - start, slot })).filter(({ p }) => p >= 0 && p < part.length);
        const r = await this.context.submit({
          seq: this,
          tokens: part,
          startPos: this.history.length,
          tapPositions: local.map((x) => x.p),
          tapLayers: local.length > 0 ? layers : [],
          logprobK: 0,
          wantLogprob: false,
        });
        this.history.push(...part);
        for (const [layer, rows] of r.hidden ?? []) {
          local.forEach(({ slot }, i) => hidden.get(layer)!.set(rows.subarray(i * nEmbd, (i + 1) * nEmbd), slot * nEmbd));
        }
      }
      return { logits: this.logitsBuf!.slice(), hidden };
    } finally {
      this.busy = false;
    }
  }

  /**
   * Generate token by token. Each yielded token has been decoded (its hidden states are available and the KV cache
   * holds it), except a token that stops generation.
   */
  async *generate(opts: GenerateOptions): AsyncGenerator<GeneratedToken, void, void> {
    this.enter();
    const sampler = new Sampler(this.context.model.llama.api, opts.sampler ?? {});
    try {
      if (this.history.length === 0) throw new LynxEngineUsageError('generate() needs a prompt: append tokens first');
      const model = this.context.model;
      const k = opts.topLogprobs ?? 0;
      const wantLp = (opts.logprobs ?? false) || k > 0;
      let pending: { token: number; logprob?: number; top?: TokenLogprob[] };
      if (this.logitsValid) {
        const token = sampler.sampleFromLogits(this.logitsBuf!);
        pending = { token, ...(wantLp ? logprobs(this.logitsBuf!, token, k) : {}) };
      } else {
        // Logits were discarded (truncate): recompute them by decoding the last token again.
        const last = this.history.pop()!;
        this.context.model.llama.api.llama_memory_seq_rm(this.context.memory, this.id, this.history.length, -1);
        const r = await this.submitOne(last, sampler, [], wantLp, k);
        pending = { token: r.sampled!, logprob: r.logprob, top: r.top };
      }
      const stopTokens = new Set(opts.stop?.tokens ?? []);
      const stopEog = opts.stop?.eog ?? true;
      const stopStrings = opts.stop?.strings ?? [];
      const decoder = new TextDecoder('utf-8');
      let text = '';
      for (let index = 0; index < opts.maxTokens; index++) {
        const token = pending.token;
        const piece = decoder.decode(model.tokenBytes(token), { stream: true });
        text += piece;
        const stop = (stopEog && model.isEog(token)) || stopTokens.has(token) || stopStrings.some((s) => text.endsWith(s));
        if (stop) {
          yield { token, index, text: piece, stopped: true, logprob: pending.logprob, topLogprobs: pending.top };
          return;
        }
        const layers = opts.tapLayers && opts.tapLayers.length > 0 && (opts.tapWhen ? opts.tapWhen(token, text) : true) ? opts.tapLayers : [];
        this.checkRoom(1);
        const r = await this.submitOne(token, sampler, layers, wantLp, k);
        const hidden = r.hidden;
        yield { token, index, text: piece, stopped: false, logprob: pending.logprob, topLogprobs: pending.top, hidden };
        pending = { token: r.sampled!, logprob: r.logprob, top: r.top };
      }
    } finally {
      sampler.dispose();
      this.busy = false;
    }
  }

  /** A new sequence with a copy of this one's KV state (llama_memory_seq_cp; cells are shared, not copied). */
  fork(): Sequence {
    this.check();
    // Forking between generation steps is fine (the generator is suspended at a yield); only an in-flight decode is not.
    if (this.inflight) throw new LynxEngineUsageError('fork() while a decode of this sequence is in flight: await it first');
    const id = this.context.allocateId();
    this.context.model.llama.api.llama_memory_seq_cp(this.context.memory, this.id, id, -1, -1);
    const child = new Sequence(this.context, id);
    child.history.push(...this.history);
    if (this.logitsValid) {
      child.logitsBuf = this.logitsBuf!.slice();
      child.logitsValid = true;
    }
    return child;
  }

  /** Drop tokens from `length` on; the sequence continues from there. */
  truncate(length: number): void {
    this.check();
    if (this.busy) throw new LynxEngineUsageError('truncate() while this sequence is generating');
    if (!Number.isInteger(length) || length < 0 || length > this.history.length) {
      throw new LynxEngineUsageError(`cannot truncate a sequence of ${this.history.length} tokens to ${length}`);
    }
    if (length === this.history.length) return;
    this.context.model.llama.api.llama_memory_seq_rm(this.context.memory, this.id, length, -1);
    this.history.length = length;
    this.logitsValid = false;
  }

  /** Free this sequence's KV cells and its slot. Further use throws DisposedError. */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.context.releaseId(this.id);
  }

  /** @internal Called by the scheduler with a view of the logits of this sequence's last output row. */
  keepLogits(view: Float32Array): void {
    if (!this.logitsBuf || this.logitsBuf.length !== view.length) this.logitsBuf = new Float32Array(view.length);
    this.logitsBuf.set(view);
    this.logitsValid = true;
  }

  private async submitOne(token: number, sampler: Sampler, layers: TapLayer[], wantLp: boolean, k: number): Promise<DecodeResult> {
    this.inflight = true;
    const r = await this.context.submit({
      seq: this,
      tokens: [token],
      startPos: this.history.length,
      tapPositions: layers.length > 0 ? [0] : [],
      tapLayers: layers,
      sampler,
      logprobK: k,
      wantLogprob: wantLp,
    }).finally(() => (this.inflight = false));
    this.history.push(token);
    return r;
  }

  private checkRoom(n: number): void {
    if (this.history.length + n > this.context.nCtx) {
      throw new ContextFullError(
        `sequence ${this.id} would hold ${this.history.length + n} tokens but the context has ${this.context.nCtx}: create the context with a larger nCtx`,
      );
    }
  }

  private check(): void {
    if (this.isDisposed) throw new DisposedError(`sequence ${this.id} was disposed`);
    this.context.ptr;
  }

  private enter(): void {
    this.check();
    if (this.busy) throw new LynxEngineUsageError(`sequence ${this.id} is busy: one append/generate at a time per sequence`);
    this.busy = true;
  }
}

