/**
 * A llama.cpp context holding many sequences in one unified KV cache, and the scheduler that packs every pending
 * decode request of every live sequence into one `llama_decode` call (continuous batching).
 */
import koffi from 'koffi';
import { availableParallelism } from 'node:os';
import type { LlamaModel } from './model.js';
import { ggml_backend_sched_eval_callback, GGML_TENSOR_OFFSETS } from '../native/ggml.js';
import type { Pointer } from '../native/pointer.js';
import { ContextFullError, DecodeError, DisposedError, AbiMismatchError } from './errors.js';
import { logSoftmaxSummary, type Sampler, type TokenLogprob } from './sampler.js';
import { Sequence } from './sequence.js';
import { setErrorSink } from '../native/library.js';
import { InvalidInputError } from '../util/errors.js';

/** A tap point: block index N (tensor `l_out-N`, = HF hidden_states[N+1]) or 'final' (after the final norm). */
export type TapLayer = number | 'final';

export interface ContextOptions {
  /** Total KV cells shared by all sequences (rounded up to a multiple of 256 by llama.cpp). Default 4096. */
  nCtx?: number;
  /** Maximum number of live sequences (forks included). Default 16. */
  nSeqMax?: number;
  /** Maximum tokens in one llama_decode call. Default 512. */
  nBatch?: number;
  /**
   * CPU threads. Default: $LYNX_THREADS, else all available cores. On a machine whose cores are busy with other work,
   * fewer threads are much faster: llama.cpp's workers spin at a barrier, so one that loses its core stalls the rest.
   */
  threads?: number;
  /** Install the hidden-state tap hook. Default true; false removes even its per-node check. */
  taps?: boolean;
  /** Flash attention: 'auto' (default), true, false. */
  flashAttention?: boolean | 'auto';
  /**
   * KV cache precision. 'f16' (default) halves cache memory; 'f32' with flashAttention false makes results
   * independent of which other sequences share the batch and cache (to ~1e-6), at twice the cache memory.
   */
  kvType?: 'f16' | 'f32' | 'q8_0';
  /**
   * Draw the tokens of one batch's sequences in parallel on libuv's worker threads (UV_THREADPOOL_SIZE, default 4)
   * rather than one after another on the main thread. 'auto' (default): when a step samples at least two sequences
   * of a vocabulary of at least 4,096 tokens, where one draw costs 0.2-12 ms (152k tokens). Same tokens either way.
   */
  parallelSampling?: boolean | 'auto';
}

/** Below this vocabulary size a draw takes microseconds, less than handing it to a worker thread. */
const PARALLEL_SAMPLING_MIN_VOCAB = 4096;

const KV_TYPES = { f32: 0, f16: 1, q8_0: 8 } as const;

/** @internal One sequence's share of a decode call. */
export interface DecodeRequest {
  seq: Sequence;
  tokens: number[];
  startPos: number;
  /** Indices into `tokens` whose logits/hidden states are needed (the last one is always output). */
  tapPositions: number[];
  tapLayers: TapLayer[];
  sampler?: Sampler;
  logprobK: number;
  wantLogprob: boolean;
  resolve: (r: DecodeResult) => void;
  reject: (e: Error) => void;
}

/** @internal */
export interface DecodeResult {
  sampled?: number;
  logprob?: number;
  top?: TokenLogprob[];
  /** Per tap layer, the rows of `tapPositions` concatenated (each nEmbd floats). */
  hidden?: Map<TapLayer, Float32Array>;
}

interface TapTarget {
  req: DecodeRequest;
  /** Row of the tensor when it holds every batch token, and when it holds only output rows. */
  batchIndex: number;
  outputIndex: number;
  /** Row slot in the result array. */
  slot: number;
}

export class LlamaContext {
  readonly model: LlamaModel;
  readonly nCtx: number;
  readonly nSeqMax: number;
  readonly nBatch: number;
  private handle: Pointer | null;
  private readonly mem: Pointer;
  private readonly freeIds: number[];
  private readonly queue: DecodeRequest[] = [];
  private flushScheduled = false;
  /** A decode's results are still being read (tokens drawn on worker threads): no decode may start, nor llama_free. */
  private reading = false;
  private freeWhenRead = false;
  private readonly parallelSampling: boolean | 'auto';
  private readonly callback: unknown;
  private tapPlan: Map<string, TapTarget[]> | null = null;
  private tapBatchSize = 0;
  private tapOutputCount = 0;
  private tapChecked = false;
  // Native batch arrays, allocated once.
  private readonly batchMem: { token: Pointer; pos: Pointer; nSeqId: Pointer; seqIdPtrs: Pointer; seqIds: Pointer; logits: Pointer };
  private readonly bToken: Int32Array;
  private readonly bPos: Int32Array;
  private readonly bSeqId: Int32Array;
  private readonly bLogits: Int8Array;
  /** Number of llama_decode calls and tokens decoded, for benchmarks and tests of batching. */
  readonly stats = { decodeCalls: 0, tokensDecoded: 0 };

  constructor(model: LlamaModel, opts: ContextOptions = {}) {
    this.model = model;
    this.parallelSampling = opts.parallelSampling ?? 'auto';
    const api = model.llama.api;
    const nBatch = opts.nBatch ?? 512;
    const nSeqMax = opts.nSeqMax ?? 16;
    const threads = opts.threads ?? defaultThreads();
    const params = { ...api.llama_context_default_params().p };
    Object.assign(params, {
      n_ctx: opts.nCtx ?? 4096,
      n_batch: nBatch,
      n_ubatch: nBatch, // one ubatch per decode call keeps tap rows in batch order
      n_seq_max: nSeqMax,
      n_outputs_max_per_seq: 0,
      n_threads: threads,
      n_threads_batch: threads,
      kv_unified: true, // forks share KV cells instead of copying them
      no_perf: true,
      flash_attn_type: opts.flashAttention === undefined || opts.flashAttention === 'auto' ? -1 : opts.flashAttention ? 1 : 0,
      type_k: KV_TYPES[opts.kvType ?? 'f16'],
      type_v: KV_TYPES[opts.kvType ?? 'f16'],
    });
    if (opts.taps ?? true) {
      this.callback = koffi.register((t: Pointer, ask: boolean) => this.onEval(t, ask), koffi.pointer(ggml_backend_sched_eval_callback));
      params.cb_eval = this.callback;
    }
    const lines: string[] = [];
    const restore = setErrorSink((l) => lines.push(l.trim()));
    try {
      this.handle = api.llama_init_from_model(model.ptr, params);
    } finally {
      restore();
    }
    if (!this.handle) {
      throw new ContextFullError(`llama.cpp could not create a context (n_ctx ${params.n_ctx}, ${nSeqMax} sequences): ${lines.join('; ')}`);
    }
    this.mem = api.llama_get_memory(this.handle);
    this.nCtx = api.llama_n_ctx(this.handle);
    this.nSeqMax = api.llama_n_seq_max(this.handle);
    this.nBatch = api.llama_n_batch(this.handle);
    this.freeIds = Array.from({ length: this.nSeqMax }, (_, i) => this.nSeqMax - 1 - i);

    const n = this.nBatch;
    const token = koffi.alloc('int32_t', n);
    const pos = koffi.alloc('int32_t', n);
    const nSeqId = koffi.alloc('int32_t', n);
    const seqIds = koffi.alloc('int32_t', n);
    const seqIdPtrs = koffi.alloc('void *', n);
    const logits = koffi.alloc('int8_t', n);
    this.batchMem = { token, pos, nSeqId, seqIdPtrs, seqIds, logits };
    this.bToken = new Int32Array(koffi.view(token, n * 4));
    this.bPos = new Int32Array(koffi.view(pos, n * 4));
    this.bSeqId = new Int32Array(koffi.view(seqIds, n * 4));
    this.bLogits = new Int8Array(koffi.view(logits, n));
    new Int32Array(koffi.view(nSeqId, n * 4)).fill(1);
    // seq_id[i] points at seqIds[i]: one sequence per token.
    const ptrs = new BigUint64Array(koffi.view(seqIdPtrs, n * 8));
    const base = BigInt(koffi.address(seqIds) as bigint | number);
    for (let i = 0; i < n; i++) ptrs[i] = base + BigInt(i * 4);
  }

  /** @internal */ get ptr(): Pointer {
    if (!this.handle) throw new DisposedError('the context was disposed');
    return this.handle;
  }

  /** @internal */ get memory(): Pointer {
    this.ptr;
    return this.mem;
  }

  /** Live sequences can be created while a slot is free; forks take a slot too. */
  get freeSlots(): number {
    return this.freeIds.length;
  }

  /** A new empty sequence. Throws ContextFullError when all `nSeqMax` slots are taken. */
  createSequence(): Sequence {
    return new Sequence(this, this.allocateId());
  }

  /** @internal */ allocateId(): number {
    this.ptr;
    const id = this.freeIds.pop();
    if (id === undefined) {
      throw new ContextFullError(`all ${this.nSeqMax} sequence slots are in use: dispose a sequence or create the context with a larger nSeqMax`);
    }
    return id;
  }

  /** @internal */ releaseId(id: number): void {
    if (!this.handle) return;
    this.model.llama.api.llama_memory_seq_rm(this.mem, id, -1, -1);
    this.freeIds.push(id);
  }

  /** @internal Queue a decode; requests submitted in the same tick share one llama_decode call. */
  submit(req: Omit<DecodeRequest, 'resolve' | 'reject'>): Promise<DecodeResult> {
    this.ptr;
    if (req.tokens.length === 0 || req.tokens.length > this.nBatch) {
      return Promise.reject(new DecodeError(`internal: request of ${req.tokens.length} tokens (batch is ${this.nBatch})`));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ ...req, resolve, reject });
      this.scheduleFlush();
    });
  }

  /**
   * Flush on the next turn of the event loop, after every microtask: the sequences resumed by the last step's results
   * have all queued their next token by then, so they share one llama_decode call.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.reading || this.queue.length === 0) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  dispose(): void {
    if (!this.handle) return;
    for (const r of this.queue.splice(0)) r.reject(new DisposedError('the context was disposed'));
    if (this.reading) {
      // Worker threads are reading this context's logits: free it once they are done.
      this.freeWhenRead = true;
      return;
    }
    this.free();
  }

  private free(): void {
    this.model.llama.api.llama_free(this.handle);
    this.handle = null;
    for (const p of Object.values(this.batchMem)) koffi.free(p);
    if (this.callback) koffi.unregister(this.callback as never);
  }

  /** One llama_decode call for as many queued requests as fit in a batch; the rest wait for the next flush. */
  private flush(): void {
    this.flushScheduled = false;
    if (!this.handle || this.reading) return;
    const group: DecodeRequest[] = [];
    let n = 0;
    while (this.queue.length > 0 && n + this.queue[0]!.tokens.length <= this.nBatch) {
      const r = this.queue.shift()!;
      if (r.seq.disposed) {
        r.reject(new DisposedError('the sequence was disposed'));
        continue;
      }
      group.push(r);
      n += r.tokens.length;
    }
    if (group.length === 0) return;
    const read = this.decodeGroup(group, n);
    if (read) {
      this.reading = true;
      void read.finally(() => {
        this.reading = false;
        if (this.freeWhenRead) this.free();
        else this.scheduleFlush();
      });
    } else {
      this.scheduleFlush();
    }
  }

  /** Decode one group; returns a promise when its results are still being read on worker threads. */
  private decodeGroup(group: DecodeRequest[], nTokens: number): Promise<void> | undefined {
    const api = this.model.llama.api;
    const lastIndex: number[] = [];
    const plan = new Map<string, TapTarget[]>();
    const rowsPerReq = new Map<DecodeRequest, number>();
    let b = 0;
    let nOutputs = 0;
    for (const req of group) {
      const taps = new Set(req.tapPositions);
      for (let j = 0; j < req.tokens.length; j++) {
        const out = j === req.tokens.length - 1 || taps.has(j);
        this.bToken[b] = req.tokens[j]!;
        this.bPos[b] = req.startPos + j;
        this.bSeqId[b] = req.seq.id;
        this.bLogits[b] = out ? 1 : 0;
        if (taps.has(j) && req.tapLayers.length > 0) {
          const slot = req.tapPositions.indexOf(j);
          for (const layer of req.tapLayers) {
            const name = layer === 'final' ? 'result_norm' : `l_out-${layer}`;
            let list = plan.get(name);
            if (!list) plan.set(name, (list = []));
            list.push({ req, batchIndex: b, outputIndex: nOutputs, slot });
          }
        }
        if (out) nOutputs++;
        b++;
      }
      lastIndex.push(b - 1);
      if (req.tapLayers.length > 0) rowsPerReq.set(req, req.tapPositions.length);
    }
    const hidden = new Map<DecodeRequest, Map<TapLayer, Float32Array>>();
    for (const [req, rows] of rowsPerReq) {
      const m = new Map<TapLayer, Float32Array>();
      for (const layer of req.tapLayers) m.set(layer, new Float32Array(rows * this.model.info.nEmbd));
      hidden.set(req, m);
    }
    this.tapPlan = plan.size > 0 ? plan : null;
    this.tapBatchSize = nTokens;
    this.tapOutputCount = nOutputs;
    this.tapResults = hidden;

    const batch = {
      n_tokens: nTokens,
      token: this.batchMem.token,
      embd: null,
      pos: this.batchMem.pos,
      n_seq_id: this.batchMem.nSeqId,
      seq_id: this.batchMem.seqIdPtrs,
      logits: this.batchMem.logits,
    };
    let rc: number;
    const errors: string[] = [];
    const restore = setErrorSink((l) => errors.push(l.trim()));
    try {
      rc = api.llama_decode(this.ptr, batch);
    } catch (e) {
      rc = -99;
      errors.push((e as Error).message);
    } finally {
      restore();
      this.tapPlan = null;
      this.tapResults = undefined;
    }
    this.stats.decodeCalls++;
    this.stats.tokensDecoded += nTokens;
    if (rc !== 0) {
      const err =
        rc === 1
          ? new ContextFullError(
              `the KV cache is full (n_ctx ${this.nCtx} shared by all sequences): dispose or truncate sequences, or create the context with a larger nCtx`,
            )
          : new DecodeError(`llama_decode failed with code ${rc}${errors.length ? `: ${errors.join('; ')}` : ''}`);
      for (const r of group) r.reject(err);
      return;
    }
    const sampled = group.filter((r) => r.sampler && !r.sampler.greedy).length;
    const parallel =
      this.parallelSampling === true ||
      (this.parallelSampling === 'auto' && sampled >= 2 && this.model.info.nVocab >= PARALLEL_SAMPLING_MIN_VOCAB);
    const drawing: { req: DecodeRequest; draw: Promise<number>; finish: (token: number) => DecodeResult }[] = [];
    for (let g = 0; g < group.length; g++) {
      const req = group[g]!;
      const idx = lastIndex[g]!;
      try {
        // Read the logits pointer here, on the main thread: the first read after a decode reorders the outputs.
        const logitsPtr = api.llama_get_logits_ith(this.ptr, idx);
        if (!logitsPtr) throw new DecodeError('llama.cpp returned no logits for an output row');
        const result: DecodeResult = { hidden: hidden.get(req) };
        const sampler = req.sampler;
        const draw = sampler && !sampler.greedy && parallel ? sampler.sampleFromContextAsync(this.ptr, idx) : undefined;
        // While a worker draws the token, copy the logits and compute the log-probabilities here.
        const logits = new Float32Array(koffi.view(logitsPtr, this.model.info.nVocab * 4));
        req.seq.keepLogits(logits);
        if (!sampler) {
          req.resolve(result);
          continue;
        }
        const summary = req.wantLogprob || req.logprobK > 0 ? logSoftmaxSummary(logits, req.logprobK) : undefined;
        const finish = (token: number): DecodeResult => {
          result.sampled = token;
          if (summary) {
            // `logits` still views the context's buffer: no decode starts until every draw of this step is read.
            result.logprob = logits[token]! - summary.logZ;
            result.top = summary.top;
          }
          return result;
        };
        if (draw) drawing.push({ req, draw, finish });
        else req.resolve(finish(sampler.sampleFromContext(this.ptr, idx, logits)));
      } catch (e) {
        req.reject(e as Error);
      }
    }
    if (drawing.length === 0) return undefined;
    // Resolve only when every draw is done: a resumed sequence queues its next decode, which must wait for the workers.
    return Promise.allSettled(drawing.map((d) => d.draw)).then((outcomes) => {
      outcomes.forEach((out, i) => {
        const { req, finish } = drawing[i]!;
        if (out.status === 'fulfilled') req.resolve(finish(out.value));
        else req.reject(out.reason instanceof Error ? out.reason : new DecodeError(String(out.reason)));
      });
    });
  }

  private tapResults: Map<DecodeRequest, Map<TapLayer, Float32Array>> | undefined;

  /** ggml's eval callback: `ask` = "do you want this node's data?", then called again with the data. */
  private onEval(t: Pointer, ask: boolean): boolean {
    const plan = this.tapPlan;
    if (!plan) return false; // no taps on this step: the graph runs in one piece
    const name = this.model.llama.api.ggml_get_name(t);
    const targets = plan.get(name);
    if (!targets) return false;
    if (ask) return true;
    const api = this.model.llama.api;
    const ne0 = Number(koffi.decode(t, GGML_TENSOR_OFFSETS.ne, 'int64_t'));
    const ne1 = Number(koffi.decode(t, GGML_TENSOR_OFFSETS.ne + 8, 'int64_t'));
    const type = koffi.decode(t, GGML_TENSOR_OFFSETS.type, 'int32_t') as number;
    if (!this.tapChecked) {
      const nbytes = Number(api.ggml_nbytes(t));
      if (type !== 0 || nbytes !== ne0 * ne1 * 4) {
        throw new AbiMismatchError(`ggml_tensor layout mismatch reading tap ${name} (type ${type}, ne ${ne0}x${ne1}, nbytes ${nbytes})`);
      }
      this.tapChecked = true;
    }
    const nEmbd = this.model.info.nEmbd;
    const useBatchRows = ne1 === this.tapBatchSize;
    if (ne0 !== nEmbd || (!useBatchRows && ne1 !== this.tapOutputCount)) {
      throw new DecodeError(`tap ${name} has shape ${ne0}x${ne1}; expected ${nEmbd} x (${this.tapBatchSize} tokens or ${this.tapOutputCount} outputs)`);
    }
    const layer: TapLayer = name === 'result_norm' ? 'final' : Number(name.slice('l_out-'.length));
    for (const target of targets) {
      const row = useBatchRows ? target.batchIndex : target.outputIndex;
      const dst = this.tapResults!.get(target.req)!.get(layer)!;
      const view = dst.subarray(target.slot * nEmbd, (target.slot + 1) * nEmbd);
      api.ggml_backend_tensor_get(t, view, row * nEmbd * 4, nEmbd * 4);
    }
    return true;
  }
}

/** $LYNX_THREADS when it is a positive integer, else the number of available cores. */
export function defaultThreads(): number {
  const env = process.env.LYNX_THREADS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) throw new InvalidInputError(`LYNX_THREADS must be a positive integer (got '${env}')`);
    return n;
  }
  return availableParallelism();
}
