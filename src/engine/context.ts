/**
 * A llama.cpp context holding many sequences in one unified KV cache, and the scheduler that packs every pending
 * decode request of every live sequence into one `llama_decode` call (continuous batching).
 *
 * Lifecycle: a context belongs to its model (model.createContext or `new LlamaContext(model)` register it), and its
 * sequences belong to it. Disposing either disposes what it owns; native memory is freed only once no native work of
 * this context (a decode on a worker thread, token draws) is still running, and calls on KV memory made meanwhile
 * (fork, truncate, dispose of a sequence) wait for that work instead of racing it.
 */
import './disposable.js';
import koffi from 'koffi';
import { totalmem } from 'node:os';
import type { LlamaModel } from './model.js';
import { ggml_backend_sched_eval_callback, GGML_TENSOR_OFFSETS } from '../native/ggml.js';
import type { Pointer } from '../native/pointer.js';
import { AbiMismatchError, AbortError, ContextFullError, DecodeError, DisposedError, LynxEngineUsageError } from './errors.js';
import { logSoftmaxSummary, type Sampler, type TokenLogprob } from './sampler.js';
import { Sequence } from './sequence.js';
import { setErrorSink } from '../native/library.js';
import { createAbortFlag, type NativeAbortFlag } from '../native/abort-flag.js';
import { hardExit } from '../native/hard-exit.js';
import { resolveThreads } from './threads.js';
import { checkChoice, checkInteger } from './validate.js';

/** A tap point: block index N (tensor `l_out-N`, = HF hidden_states[N+1]) or 'final' (after the final norm). */
export type TapLayer = number | 'final';

export interface ContextOptions {
  /** Total KV cells shared by all sequences (rounded up to a multiple of 256 by llama.cpp). Default 4096. */
  nCtx?: number;
  /** Maximum number of live sequences (forks included), 1 to 256. Default 16. */
  nSeqMax?: number;
  /** Maximum tokens in one llama_decode call; at least nSeqMax. Default 512. */
  nBatch?: number;
  /**
   * CPU threads, 1 to 2 x the available cores. Default: $LYNX_THREADS, else all available cores. More than the
   * cores draws a warning: llama.cpp's workers spin at a barrier, so one that loses its core stalls the rest. On a
   * machine whose cores are busy with other work, fewer threads are faster for the same reason.
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
  /**
   * Run llama_decode on a libuv worker thread, so that the event loop keeps running while it computes (signals,
   * timers, HTTP requests, aborts). 'auto' (default): decodes of at least 32 tokens (prefills); one-token steps stay
   * on the main thread, where the hand-over costs more than it frees on a busy machine. true: every decode; false:
   * none. Same results either way.
   */
  decodeOffThread?: boolean | 'auto';
}

/** Below this vocabulary size a draw takes microseconds, less than handing it to a worker thread. */
const PARALLEL_SAMPLING_MIN_VOCAB = 4096;

/** Decodes of at least this many tokens run off the main thread under decodeOffThread 'auto'. */
const OFF_THREAD_MIN_TOKENS = 32;

/** llama.cpp's LLAMA_MAX_SEQ: more sequences make llama_init_from_model fail. */
export const MAX_SEQUENCES = 256;

const KV_TYPES = { f32: 0, f16: 1, q8_0: 8 } as const;
const KV_BYTES = { f32: 4, f16: 2, q8_0: 34 / 32 } as const;

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
  /** Speculative verification: every token's logits are output and returned in `rows`, not only the last one's. */
  allLogits?: boolean;
  /** Partial depth (DepthExit): the decode may stop after an early block; such a request is decoded alone. */
  exit?: DepthExit;
  /**
   * Aborting drops the request while it waits in the queue. Once it decodes on a worker thread, the decode is stopped
   * when every request in it was aborted (llama.cpp then removes the batch from the KV cache); else it completes.
   */
  signal?: AbortSignal;
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
  /** With `allLogits`: the logits of every token of the request, rows of nVocab. With `exit`, run to full depth: the last token's. */
  rows?: Float32Array;
  /** With `exit`: the block the decode stopped after (its KV cells hold blocks 0..that one), or null at full depth. */
  exitedAt?: number | null;
  /** With `exit`, stopped: the graph really stopped there (no node after it was computed; see DepthExit). */
  stopHeld?: boolean;
}

/**
 * A decode that may stop after an early block, through llama.cpp's eval callback: the callback reads the last
 * token's hidden state after block K (`l_out-K`) and returning false from it ends the graph computation there. The
 * KV cells of blocks 0..K of the decoded positions are written, those of later blocks are not, and the logits are
 * not computed: the caller removes those positions (llama_memory_seq_rm) before decoding them again at full depth,
 * which then equals a clean run. ggml stops only the graph split it is in; where a graph has several splits (layers
 * on several devices) the later ones still run: `stopHeld` reports it, and the result is still correct, only not
 * cheaper.
 */
export interface DepthExit {
  /** Block indices, ascending, after which the decode may stop. */
  layers: readonly number[];
  /**
   * Stop after `layer`? Given the last token's hidden state there (nEmbd floats). Default: stop at the first layer.
   * When no layer says stop, the decode runs to full depth and its logits are returned.
   */
  decide?: (layer: number, hidden: Float32Array) => boolean;
}

/** The state of the partial-depth decode in flight. */
interface ExitWatch {
  exit: DepthExit;
  /** Batch row of the request's last token, and its row among the outputs. */
  batchIndex: number;
  hidden: Map<number, Float32Array>;
  exitedAt: number | null;
  /** The node that stopped the graph was read; any later question from ggml means the stop did not hold. */
  stopped: boolean;
  overran: boolean;
}

interface TapTarget {
  req: DecodeRequest;
  /** Row of the tensor when it holds every batch token, and when it holds only output rows. */
  batchIndex: number;
  outputIndex: number;
  /** Row slot in the result array. */
  slot: number;
}

/** What llama_decode returned, its error lines, and the partial-depth decode it ran, if it was one. */
interface DecodeOutcome {
  rc: number;
  errors: string[];
  watch: ExitWatch | null;
}

/** One group of requests laid out in the native batch arrays, ready for llama_decode. */
interface PreparedBatch {
  group: DecodeRequest[];
  nTokens: number;
  nOutputs: number;
  /** Batch index of each request's last token (its logits row). */
  lastIndex: number[];
  plan: Map<string, TapTarget[]> | null;
  hidden: Map<DecodeRequest, Map<TapLayer, Float32Array>>;
}

export class LlamaContext {
  readonly model: LlamaModel;
  readonly nCtx: number;
  readonly nSeqMax: number;
  readonly nBatch: number;
  /** The thread count llama.cpp runs this context's decodes with. */
  readonly threads: number;
  private handle: Pointer | null;
  private isDisposed = false;
  private readonly mem: Pointer;
  private readonly freeIds: number[];
  private readonly queue: DecodeRequest[] = [];
  private flushScheduled = false;
  /**
   * Native work of this context is running off the main thread (a decode on a worker, or the draws reading its
   * logits): no decode may start, no KV call may run (they wait in `deferred`), and llama_free waits (freeWhenRead).
   */
  private working = false;
  private freeWhenRead = false;
  private readonly deferred: (() => void)[] = [];
  /** The requests of the decode running on a worker thread, and the flag that stops it between graph nodes. */
  private workerGroup: DecodeRequest[] | null = null;
  private readonly abortFlag: NativeAbortFlag | undefined;
  private readonly parallelSampling: boolean | 'auto';
  private readonly decodeOffThread: boolean | 'auto';
  private readonly callback: unknown;
  private readonly freed: Promise<void>;
  private markFreed!: () => void;
  private tapPlan: Map<string, TapTarget[]> | null = null;
  private tapResults: Map<DecodeRequest, Map<TapLayer, Float32Array>> | undefined;
  private tapBatchSize = 0;
  private tapOutputCount = 0;
  private tapChecked = false;
  /** An error thrown while reading a tap: koffi would only hand llama.cpp a `false`, so it is kept and thrown after. */
  private tapError: Error | undefined;
  // Native batch arrays, allocated once.
  private readonly batchMem: { token: Pointer; pos: Pointer; nSeqId: Pointer; seqIdPtrs: Pointer; seqIds: Pointer; logits: Pointer };
  private readonly bToken: Int32Array;
  private readonly bPos: Int32Array;
  private readonly bSeqId: Int32Array;
  private readonly bLogits: Int8Array;
  /** Number of llama_decode calls and tokens decoded (and decodes stopped by an abort), for benchmarks and tests. */
  readonly stats = { decodeCalls: 0, tokensDecoded: 0, decodesAborted: 0, partialDecodes: 0, partialStopsIgnored: 0 };
  private exitWatch: ExitWatch | null = null;

  /** A context on `model`, owned by it (model.createContext(opts) is the same). */
  constructor(model: LlamaModel, opts: ContextOptions = {}) {
    this.model = model;
    const api = model.llama.api;
    const o = checkContextOptions(model, opts);
    this.parallelSampling = o.parallelSampling;
    this.decodeOffThread = o.decodeOffThread;
    this.threads = o.threads;
    const params = { ...api.llama_context_default_params().p };
    Object.assign(params, {
      n_ctx: o.nCtx,
      n_batch: o.nBatch,
      n_ubatch: o.nBatch, // one ubatch per decode call keeps tap rows in batch order
      n_seq_max: o.nSeqMax,
      n_outputs_max_per_seq: 0,
      n_threads: o.threads,
      n_threads_batch: o.threads,
      kv_unified: true, // forks share KV cells instead of copying them
      no_perf: true,
      flash_attn_type: o.flashAttention === 'auto' ? -1 : o.flashAttention ? 1 : 0,
      type_k: KV_TYPES[o.kvType],
      type_v: KV_TYPES[o.kvType],
    });
    this.abortFlag = createAbortFlag();
    if (this.abortFlag) {
      params.abort_callback = this.abortFlag.callback;
      params.abort_callback_data = this.abortFlag.data;
    }
    if (o.taps) {
      this.callback = koffi.register((t: Pointer, ask: boolean) => this.#onEval(t, ask), koffi.pointer(ggml_backend_sched_eval_callback));
      params.cb_eval = this.callback;
    }
    const lines: string[] = [];
    const restore = setErrorSink((l) => lines.push(l.trim()));
    try {
      this.handle = api.llama_init_from_model(model.ptr, params);
    } catch (e) {
      if (this.callback) koffi.unregister(this.callback as never);
      this.abortFlag?.free();
      throw e;
    } finally {
      restore();
    }
    if (!this.handle) {
      if (this.callback) koffi.unregister(this.callback as never);
      this.abortFlag?.free();
      throw new ContextFullError(`llama.cpp could not create a context (n_ctx ${params.n_ctx}, ${o.nSeqMax} sequences): ${lines.join('; ')}`);
    }
    this.freed = new Promise((resolve) => (this.markFreed = resolve));
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
    model.own(this);
  }

  /** @internal */ get ptr(): Pointer {
    this.#check();
    return this.handle;
  }

  /** @internal */ get memory(): Pointer {
    this.#check();
    return this.mem;
  }

  /** True once this context, or the model owning it, was disposed. */
  get disposed(): boolean {
    return this.isDisposed;
  }

  /** Live sequences can be created while a slot is free; forks take a slot too. */
  get freeSlots(): number {
    this.#check();
    return this.freeIds.length;
  }

  /** A new empty sequence. Throws ContextFullError when all `nSeqMax` slots are taken. */
  createSequence(): Sequence {
    return new Sequence(this, this.allocateId());
  }

  /** @internal */ allocateId(): number {
    this.#check();
    const id = this.freeIds.pop();
    if (id === undefined) {
      throw new ContextFullError(`all ${this.nSeqMax} sequence slots are in use: dispose a sequence or create the context with a larger nSeqMax`);
    }
    return id;
  }

  /** @internal Free a disposed sequence's slot now and its KV cells before the next decode (see whenIdle). */
  releaseId(id: number): void {
    this.#check();
    this.freeIds.push(id);
    // The next sequence given this id queues its own KV calls and decodes after this one, so the slot is free now.
    this.whenIdle(() => this.model.llama.api.llama_memory_seq_rm(this.mem, id, -1, -1));
  }

  /**
   * @internal Run a call on this context's KV memory now, or, while a decode runs on a worker thread (or draws read
   * its logits), right after that work and before the next decode: the two must never overlap.
   */
  whenIdle(op: () => void): void {
    this.#check();
    if (this.working) this.deferred.push(op);
    else op();
  }

  /** @internal Queue a decode; requests submitted in the same tick share one llama_decode call. */
  submit(req: Omit<DecodeRequest, 'resolve' | 'reject'>): Promise<DecodeResult> {
    this.#check();
    if (req.tokens.length === 0 || req.tokens.length > this.nBatch) {
      return Promise.reject(new DecodeError(`internal: request of ${req.tokens.length} tokens (batch is ${this.nBatch})`));
    }
    const signal = req.signal;
    if (signal?.aborted) return Promise.reject(abortedDecode(signal));
    return new Promise((resolve, reject) => {
      const entry: DecodeRequest = { ...req, resolve, reject };
      if (signal) {
        // An aborted request still waiting in the queue leaves it; one already decoding completes.
        const onAbort = () => {
          const i = this.queue.indexOf(entry);
          if (i < 0) return this.#stopWorkerDecodeIfAllAborted();
          this.queue.splice(i, 1);
          reject(abortedDecode(signal));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        entry.resolve = (r) => {
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        };
        entry.reject = (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        };
      }
      this.queue.push(entry);
      this.#scheduleFlush();
    });
  }

  /**
   * Dispose every sequence of this context (later calls on them throw DisposedError), reject queued decodes, and
   * free the native context, at once or, when a decode or draws still run on worker threads, as soon as they end.
   * Calling dispose() again does nothing.
   */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    for (const r of this.queue.splice(0)) r.reject(this.#disposedError());
    if (this.working) {
      // Its results would be thrown away: stop a decode on a worker thread at its next graph node.
      if (this.workerGroup) this.abortFlag?.set(true);
      this.freeWhenRead = true;
      return;
    }
    this.#free();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** dispose(), then wait until the native context is freed (after work still running on worker threads). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
    await this.freed;
  }

  #check(): void {
    if (this.isDisposed) throw this.#disposedError();
  }

  #disposedError(): DisposedError {
    return this.model.disposed
      ? new DisposedError('the context was disposed with its model: load the model again and create a new context')
      : new DisposedError('the context was disposed: create a new one with model.createContext()');
  }

  #free(): void {
    if (!this.handle) return;
    this.model.llama.api.llama_free(this.handle);
    this.handle = null;
    this.deferred.length = 0; // KV calls on memory that no longer exists
    for (const p of Object.values(this.batchMem)) koffi.free(p);
    if (this.callback) koffi.unregister(this.callback as never);
    this.abortFlag?.free();
    this.model.disown(this);
    this.markFreed();
  }

  /**
   * Flush on the next turn of the event loop, after every microtask: the sequences resumed by the last step's results
   * have all queued their next token by then, so they share one llama_decode call.
   */
  #scheduleFlush(): void {
    if (this.flushScheduled || this.working || this.isDisposed || this.queue.length === 0) return;
    this.flushScheduled = true;
    setImmediate(() => this.#flush());
  }

  /** Mark native work in flight until `work` settles; then free, or run the deferred KV calls and flush again. */
  #workUntil(work: Promise<void>): void {
    this.working = true;
    void work.finally(() => {
      this.working = false;
      if (this.freeWhenRead) return this.#free();
      for (const op of this.deferred.splice(0)) op();
      this.#scheduleFlush();
    });
  }

  /** One llama_decode call for as many queued requests as fit in a batch; the rest wait for the next flush. */
  #flush(): void {
    this.flushScheduled = false;
    if (this.isDisposed || this.working) return;
    const group: DecodeRequest[] = [];
    let n = 0;
    // A partial-depth decode stops the whole graph, so it never shares a llama_decode call.
    while (this.queue.length > 0 && n + this.queue[0]!.tokens.length <= this.nBatch && !(group.length > 0 && (group[0]!.exit || this.queue[0]!.exit))) {
      const r = this.queue.shift()!;
      if (r.seq.disposed) {
        r.reject(new DisposedError(`sequence ${r.seq.id} was disposed`));
        continue;
      }
      group.push(r);
      n += r.tokens.length;
    }
    if (group.length === 0) return;
    const batch = this.#prepare(group, n);
    const offThread = this.decodeOffThread === true || (this.decodeOffThread === 'auto' && n >= OFF_THREAD_MIN_TOKENS);
    if (offThread) {
      this.#workUntil(this.#decodeOnWorker(batch));
      return;
    }
    const draws = this.#finish(batch, this.#decodeHere(batch));
    if (draws) this.#workUntil(draws);
    else this.#scheduleFlush();
  }

  /** Lay out a group in the native batch arrays and plan which tensor rows its taps read. */
  #prepare(group: DecodeRequest[], nTokens: number): PreparedBatch {
    const lastIndex: number[] = [];
    const plan = new Map<string, TapTarget[]>();
    const rowsPerReq = new Map<DecodeRequest, number>();
    let b = 0;
    let nOutputs = 0;
    for (const req of group) {
      const taps = new Set(req.tapPositions);
      for (let j = 0; j < req.tokens.length; j++) {
        const out = j === req.tokens.length - 1 || taps.has(j) || req.allLogits === true;
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
    return { group, nTokens, nOutputs, lastIndex, plan: plan.size > 0 ? plan : null, hidden };
  }

  #nativeBatch(p: PreparedBatch): Record<string, unknown> {
    return {
      n_tokens: p.nTokens,
      token: this.batchMem.token,
      embd: null,
      pos: this.batchMem.pos,
      n_seq_id: this.batchMem.nSeqId,
      seq_id: this.batchMem.seqIdPtrs,
      logits: this.batchMem.logits,
    };
  }

  #armTaps(p: PreparedBatch): void {
    const exit = p.group[0]!.exit;
    this.exitWatch = exit ? { exit, batchIndex: p.lastIndex[0]!, hidden: new Map(), exitedAt: null, stopped: false, overran: false } : null;
    this.tapPlan = p.plan;
    this.tapBatchSize = p.nTokens;
    this.tapOutputCount = p.nOutputs;
    this.tapResults = p.hidden;
    this.tapError = undefined;
  }

  #disarmTaps(): ExitWatch | null {
    this.tapPlan = null;
    this.tapResults = undefined;
    const watch = this.exitWatch;
    this.exitWatch = null;
    return watch;
  }

  /** llama_decode on the main thread; its outcome: the return code and llama.cpp's error lines. */
  #decodeHere(p: PreparedBatch): DecodeOutcome {
    const errors: string[] = [];
    const restore = setErrorSink((l) => errors.push(l.trim()));
    this.#armTaps(p);
    let rc: number;
    let watch: ExitWatch | null = null;
    try {
      rc = this.model.llama.api.llama_decode(this.handle, this.#nativeBatch(p));
    } catch (e) {
      rc = -99;
      errors.push((e as Error).message);
    } finally {
      restore();
      watch = this.#disarmTaps();
    }
    return { rc, errors, watch };
  }

  /** Stop the decode running on a worker thread once none of its requests is wanted any more. */
  #stopWorkerDecodeIfAllAborted(): void {
    if (this.workerGroup?.every((r) => r.signal?.aborted)) this.abortFlag?.set(true);
  }

  /** llama_decode on a libuv worker thread (tap callbacks are relayed to this thread by koffi), then its results. */
  async #decodeOnWorker(p: PreparedBatch): Promise<void> {
    const errors: string[] = [];
    const restore = setErrorSink((l) => errors.push(l.trim()));
    this.#armTaps(p);
    this.abortFlag?.set(false);
    this.workerGroup = p.group;
    workerDecodeStarted();
    let rc: number;
    let watch: ExitWatch | null = null;
    try {
      rc = await new Promise<number>((resolve) =>
        this.model.llama.api.llama_decode_async(this.handle, this.#nativeBatch(p), (err, code) => {
          if (err) errors.push(String(err));
          resolve(err ? -99 : code);
        }),
      );
    } finally {
      workerDecodeEnded();
      this.workerGroup = null;
      this.abortFlag?.set(false);
      restore();
      watch = this.#disarmTaps();
    }
    try {
      await this.#finish(p, { rc, errors, watch });
    } catch (e) {
      for (const r of p.group) r.reject(e as Error);
    }
  }

  /** Read a decode's results; returns a promise when tokens are still being drawn on worker threads. */
  #finish(p: PreparedBatch, outcome: DecodeOutcome): Promise<void> | undefined {
    const { group, lastIndex, hidden } = p;
    this.stats.decodeCalls++;
    this.stats.tokensDecoded += p.nTokens;
    if (this.isDisposed) {
      // Disposed while the decode ran on a worker thread: nothing is read from a context about to be freed.
      for (const r of group) r.reject(this.#disposedError());
      return undefined;
    }
    const { rc, errors } = outcome;
    if (rc === 2) {
      // Stopped through the abort flag. llama.cpp takes the batch's cells out of the cache; so does this, to be sure.
      this.stats.decodesAborted++;
      const api = this.model.llama.api;
      for (const r of group) {
        api.llama_memory_seq_rm(this.mem, r.seq.id, r.startPos, -1);
        r.reject(new AbortError('the decode was stopped by its abort', { cause: r.signal?.reason }));
      }
      return undefined;
    }
    if (this.tapError) {
      for (const r of group) r.reject(this.tapError);
      return undefined;
    }
    if (rc !== 0) {
      const err =
        rc === 1
          ? new ContextFullError(
              `the KV cache is full (n_ctx ${this.nCtx} shared by all sequences): dispose or truncate sequences, or create the context with a larger nCtx`,
            )
          : new DecodeError(`llama_decode failed with code ${rc}${errors.length ? `: ${errors.join('; ')}` : ''}`);
      for (const r of group) r.reject(err);
      return undefined;
    }
    const api = this.model.llama.api;
    const watch = outcome.watch;
    if (watch) {
      this.stats.partialDecodes++;
      if (watch.exitedAt !== null) {
        // Stopped after an early block: there are no logits to read, and the sequence's own are still those of its last token.
        if (watch.overran) this.stats.partialStopsIgnored++;
        group[0]!.resolve({ hidden: watch.hidden as Map<TapLayer, Float32Array>, exitedAt: watch.exitedAt, stopHeld: !watch.overran });
        return undefined;
      }
    }
    const sampled = group.filter((r) => r.sampler && !r.sampler.greedy && !r.sampler.host).length;
    const parallel =
      this.parallelSampling === true ||
      (this.parallelSampling === 'auto' && sampled >= 2 && this.model.info.nVocab >= PARALLEL_SAMPLING_MIN_VOCAB);
    const drawing: { req: DecodeRequest; draw: Promise<number>; finish: (token: number) => DecodeResult }[] = [];
    for (let g = 0; g < group.length; g++) {
      const req = group[g]!;
      const idx = lastIndex[g]!;
      try {
        if (req.seq.disposed) throw new DisposedError(`sequence ${req.seq.id} was disposed`);
        // Read the logits pointer here, on the main thread: the first read after a decode reorders the outputs.
        const logitsPtr = api.llama_get_logits_ith(this.handle, idx);
        if (!logitsPtr) throw new DecodeError('llama.cpp returned no logits for an output row');
        const result: DecodeResult = { hidden: hidden.get(req) };
        if (watch) {
          // A partial-depth decode that no layer stopped: it ran to full depth. The caller decides what the token is.
          result.hidden = watch.hidden as Map<TapLayer, Float32Array>;
          result.exitedAt = null;
          result.rows = new Float32Array(koffi.view(logitsPtr, this.model.info.nVocab * 4)).slice();
          req.resolve(result);
          continue;
        }
        if (req.allLogits) result.rows = this.#logitRows(idx - req.tokens.length + 1, req.tokens.length);
        const sampler = req.sampler;
        const draw = sampler && !sampler.greedy && !sampler.host && parallel ? sampler.sampleFromContextAsync(this.handle, idx) : undefined;
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
        else req.resolve(finish(sampler.sampleFromContext(this.handle, idx, logits)));
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

  /** Copies of the logits of batch rows [first, first + n), concatenated. */
  #logitRows(first: number, n: number): Float32Array {
    const api = this.model.llama.api;
    const nVocab = this.model.info.nVocab;
    const rows = new Float32Array(n * nVocab);
    for (let j = 0; j < n; j++) {
      const ptr = api.llama_get_logits_ith(this.handle, first + j);
      if (!ptr) throw new DecodeError('llama.cpp returned no logits for an output row');
      rows.set(new Float32Array(koffi.view(ptr, nVocab * 4)), j * nVocab);
    }
    return rows;
  }

  /** ggml's eval callback: `ask` = "do you want this node's data?", then called again with the data. */
  #onEval(t: Pointer, ask: boolean): boolean {
    if (this.exitWatch && !this.tapError) {
      try {
        return this.#watchExit(this.exitWatch, t, ask);
      } catch (e) {
        this.tapError = e as Error;
        return false;
      }
    }
    const plan = this.tapPlan;
    if (!plan || this.tapError) return false; // no taps on this step: the graph runs in one piece
    try {
      return this.#readTap(plan, t, ask);
    } catch (e) {
      this.tapError = e as Error;
      return false;
    }
  }

  /** A partial-depth decode: read the last token's row at each exit layer and stop the graph where `decide` says. */
  #watchExit(w: ExitWatch, t: Pointer, ask: boolean): boolean {
    if (w.stopped) {
      // ggml asks about a node after the one that stopped the graph: a later split runs anyway.
      w.overran = true;
      return false;
    }
    const api = this.model.llama.api;
    const name = api.ggml_get_name(t);
    if (!name.startsWith('l_out-')) return false;
    const layer = Number(name.slice('l_out-'.length));
    if (!w.exit.layers.includes(layer)) return false;
    if (ask) return true;
    const nEmbd = this.model.info.nEmbd;
    const ne0 = Number(koffi.decode(t, GGML_TENSOR_OFFSETS.ne, 'int64_t'));
    const ne1 = Number(koffi.decode(t, GGML_TENSOR_OFFSETS.ne + 8, 'int64_t'));
    if (ne0 !== nEmbd) throw new DecodeError(`tap ${name} has ${ne0} rows of ${nEmbd}`);
    // Blocks before the last hold every batch token; the last one only the output rows (here: this token's).
    const row = ne1 === this.tapBatchSize ? w.batchIndex : ne1 - 1;
    const hidden = new Float32Array(nEmbd);
    api.ggml_backend_tensor_get(t, hidden, row * nEmbd * 4, nEmbd * 4);
    w.hidden.set(layer, hidden);
    const stop = w.exit.decide ? w.exit.decide(layer, hidden) : true;
    if (!stop) return true;
    w.exitedAt = layer;
    w.stopped = true;
    return false;
  }

  #readTap(plan: Map<string, TapTarget[]>, t: Pointer, ask: boolean): boolean {
    const api = this.model.llama.api;
    const name = api.ggml_get_name(t);
    const targets = plan.get(name);
    if (!targets) return false;
    if (ask) return true;
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

/**
 * While any decode runs on a worker thread, an exit (a signal handler calling process.exit, say) ends the process at
 * once rather than wait for the decode: see hardExit. One listener for all contexts, there only while needed.
 */
let workerDecodes = 0;
const exitNow = (code: number) => hardExit(code);

function workerDecodeStarted(): void {
  if (workerDecodes++ === 0) process.on('exit', exitNow);
}

function workerDecodeEnded(): void {
  if (--workerDecodes === 0) process.off('exit', exitNow);
}

function abortedDecode(signal: AbortSignal): AbortError {
  return new AbortError('the decode was aborted before it started', { cause: signal.reason });
}

interface CheckedContextOptions {
  nCtx: number;
  nSeqMax: number;
  nBatch: number;
  threads: number;
  taps: boolean;
  flashAttention: boolean | 'auto';
  kvType: 'f16' | 'f32' | 'q8_0';
  parallelSampling: boolean | 'auto';
  decodeOffThread: boolean | 'auto';
}

/**
 * Every option in its range before llama.cpp sees it: some values it refuses with a message, others (nBatch below
 * nSeqMax, nCtx 1 with 16 sequences) it answers with a GGML_ASSERT that aborts the process.
 */
function checkContextOptions(model: LlamaModel, opts: ContextOptions): CheckedContextOptions {
  const nCtx = checkInteger('nCtx', opts.nCtx ?? 4096, 1, 2 ** 24);
  const nSeqMax = checkInteger('nSeqMax', opts.nSeqMax ?? 16, 1, MAX_SEQUENCES, "llama.cpp's limit");
  const nBatch = checkInteger('nBatch', opts.nBatch ?? 512, 1, Number.MAX_SAFE_INTEGER);
  // llama.cpp caps the batch at nCtx, and needs one output row per sequence in a batch.
  if (Math.min(nBatch, nCtx) < nSeqMax) {
    throw new LynxEngineUsageError(
      `nBatch ${nBatch}${nCtx < nBatch ? ` (capped at nCtx ${nCtx})` : ''} must be at least nSeqMax ${nSeqMax}: raise nBatch/nCtx or lower nSeqMax`,
    );
  }
  const flashAttention = checkChoice('flashAttention', opts.flashAttention ?? 'auto', [true, false, 'auto'] as const);
  const kvType = checkChoice('kvType', opts.kvType ?? 'f16', ['f16', 'f32', 'q8_0'] as const);
  if (kvType === 'q8_0' && flashAttention === false) {
    throw new LynxEngineUsageError("kvType 'q8_0' needs flash attention: use flashAttention 'auto' or true, or another kvType");
  }
  const checked: CheckedContextOptions = {
    nCtx,
    nSeqMax,
    nBatch,
    threads: resolveThreads(opts.threads),
    taps: checkChoice('taps', opts.taps ?? true, [true, false] as const),
    flashAttention,
    kvType,
    parallelSampling: checkChoice('parallelSampling', opts.parallelSampling ?? 'auto', [true, false, 'auto'] as const),
    decodeOffThread: checkChoice('decodeOffThread', opts.decodeOffThread ?? 'auto', [true, false, 'auto'] as const),
  };
  if (!model.offloaded) {
    // A cache larger than the machine's memory is refused before llama.cpp allocates it (overcommit lets such an
    // allocation succeed, and the kernel then kills the process while the cache fills).
    const bytes = kvCacheBytes(model, nCtx, kvType);
    const total = totalmem();
    if (bytes > total) {
      const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
      const fits = Math.floor((nCtx * total) / bytes / 256) * 256;
      throw new ContextFullError(
        `a KV cache of nCtx ${nCtx} for this model needs ${gib(bytes)} but this machine has ${gib(total)} of memory: use nCtx ${fits} or less`,
      );
    }
  }
  return checked;
}

/** K and V cells for `nCtx` tokens (llama.cpp pads the count to a multiple of 256). */
function kvCacheBytes(model: LlamaModel, nCtx: number, kvType: keyof typeof KV_BYTES): number {
  const { architecture: arch, nLayer, nEmbd, nHead, nHeadKv } = model.info;
  const keyDim = Number(model.meta(`${arch}.attention.key_length`)) || nEmbd / Math.max(1, nHead);
  const valueDim = Number(model.meta(`${arch}.attention.value_length`)) || keyDim;
  const cells = Math.ceil(nCtx / 256) * 256;
  return cells * nLayer * nHeadKv * (keyDim + valueDim) * KV_BYTES[kvType];
}
