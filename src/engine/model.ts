/**
 * A GGUF model loaded by llama.cpp: its shape, metadata, special tokens, chat template and tokenizer. The model owns
 * the contexts built on it: dispose() disposes them (and their sequences) before freeing the weights under them.
 */
import './disposable.js';
import koffi from 'koffi';
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { loadLlama, setErrorSink, type Llama, type LoadLlamaOptions } from '../native/library.js';
import type { Pointer } from '../native/pointer.js';
import { llama_progress_callback } from '../native/llama.js';
import { AbortError, DisposedError, LynxEngineUsageError, ModelLoadError, throwIfAborted } from './errors.js';
import { LlamaContext, type ContextOptions } from './context.js';
import { checkTokens, describe } from './validate.js';

export interface SpecialTokens {
  bos?: number;
  eos?: number;
  eot?: number;
  pad?: number;
  /** `<think>` when the vocabulary has it as one token. */
  thinkStart?: number;
  /** `</think>` when the vocabulary has it as one token. */
  thinkEnd?: number;
}

export interface ModelInfo {
  path: string;
  architecture: string;
  name?: string;
  description: string;
  nLayer: number;
  nEmbd: number;
  nHead: number;
  nHeadKv: number;
  nVocab: number;
  nCtxTrain: number;
  nParams: number;
  sizeBytes: number;
  /** 'spm' | 'bpe' | ... as llama.cpp names the tokenizer family. */
  vocabType: string;
  addBos: boolean;
  chatTemplate?: string;
  special: SpecialTokens;
}

export interface LoadModelOptions {
  /** Layers to offload to the GPU: 'auto' (all when a GPU build is loaded), or a number (-1 = all). Default 'auto'. */
  gpuLayers?: number | 'auto';
  /** Options for loading llama.cpp itself if it is not loaded yet. */
  llama?: LoadLlamaOptions;
}

export interface LoadModelAsyncOptions extends LoadModelOptions {
  /** Aborting cancels the load (llama.cpp stops at its next progress report) and rejects with AbortError. */
  signal?: AbortSignal;
  /** The fraction of the tensor data loaded so far, from 0 to 1, as llama.cpp reports it. */
  onProgress?: (fraction: number) => void;
}

/** @internal A native resource built on a model (a context): disposed before the model, and it says when it is freed. */
export interface ModelDependent {
  dispose(): void;
}

const VOCAB_TYPES = ['none', 'spm', 'bpe', 'wpm', 'ugm', 'rwkv', 'plamo2', 'test'];

export class LlamaModel {
  /** What the file says about the model: plain data, still readable after dispose() (e.g. to name the model in a log). */
  readonly info: ModelInfo;
  /** @internal */ readonly llama: Llama;
  /** @internal Whether layers (and with them the KV cache) live on a GPU. */
  readonly offloaded: boolean;
  #handle: Pointer | null;
  readonly #vocab: Pointer;
  #disposed = false;
  readonly #dependents = new Set<ModelDependent>();
  readonly #freed: Promise<void>;
  #markFreed!: () => void;
  readonly #metadata = new Map<string, string>();
  readonly #pieceCache = new Map<number, Uint8Array>();

  private constructor(llama: Llama, handle: Pointer, path: string, offloaded: boolean) {
    this.llama = llama;
    this.#handle = handle;
    this.offloaded = offloaded;
    this.#freed = new Promise((resolve) => (this.#markFreed = resolve));
    const api = llama.api;
    this.#vocab = api.llama_model_get_vocab(handle);
    this.#readMetadata();
    const desc = Buffer.alloc(256);
    const n = api.llama_model_desc(handle, desc, desc.length);
    const vocab = this.#vocab;
    const tokenOrUndefined = (t: number) => (t >= 0 ? t : undefined);
    this.info = {
      path,
      architecture: this.meta('general.architecture') ?? 'unknown',
      name: this.meta('general.name'),
      description: desc.subarray(0, Math.max(0, n)).toString('utf8'),
      nLayer: api.llama_model_n_layer(handle),
      nEmbd: api.llama_model_n_embd(handle),
      nHead: api.llama_model_n_head(handle),
      nHeadKv: api.llama_model_n_head_kv(handle),
      nVocab: api.llama_vocab_n_tokens(vocab),
      nCtxTrain: api.llama_model_n_ctx_train(handle),
      nParams: Number(api.llama_model_n_params(handle)),
      sizeBytes: Number(api.llama_model_size(handle)),
      vocabType: VOCAB_TYPES[api.llama_vocab_type(vocab)] ?? 'unknown',
      addBos: api.llama_vocab_get_add_bos(vocab),
      chatTemplate: api.llama_model_chat_template(handle, null) ?? undefined,
      special: {
        bos: tokenOrUndefined(api.llama_vocab_bos(vocab)),
        eos: tokenOrUndefined(api.llama_vocab_eos(vocab)),
        eot: tokenOrUndefined(api.llama_vocab_eot(vocab)),
        pad: tokenOrUndefined(api.llama_vocab_pad(vocab)),
        thinkStart: this.#singleToken('<think>'),
        thinkEnd: this.#singleToken('</think>'),
      },
    };
  }

  /**
   * Load a GGUF file, blocking the thread until llama.cpp has read it (loadAsync does not). Throws ModelLoadError
   * with llama.cpp's own reason when it refuses the file.
   */
  static load(path: string, opts: LoadModelOptions = {}): LlamaModel {
    checkGgufFile(path);
    const llama = loadLlama(opts.llama);
    const { params, offloaded } = modelParams(llama, opts);
    const lines: string[] = [];
    const restore = setErrorSink((text) => lines.push(text));
    let handle: Pointer | null;
    try {
      // vocab_only stays off: this build aborts (GGML_ASSERT) when model info is read from a vocabulary-only model.
      handle = llama.api.llama_model_load_from_file(path, params);
    } finally {
      restore();
    }
    if (!handle) throw loadError(path, lines);
    return new LlamaModel(llama, handle, path, offloaded);
  }

  /**
   * Load a GGUF file on a worker thread: the event loop keeps running while llama.cpp reads it (a server answers its
   * health checks, timers fire, signals are handled). Same errors as load(), and AbortError when `signal` aborts.
   */
  static async loadAsync(path: string, opts: LoadModelAsyncOptions = {}): Promise<LlamaModel> {
    const { signal, onProgress } = opts;
    throwIfAborted(signal, `the load of ${path} was aborted`);
    checkGgufFile(path);
    const llama = loadLlama(opts.llama);
    const api = llama.api;
    const { params, offloaded } = modelParams(llama, opts);
    let observerError: unknown;
    // Called on the loading thread and relayed by koffi to this one; false makes llama.cpp cancel the load.
    const progress = koffi.register((fraction: number) => {
      if (signal?.aborted || observerError !== undefined) return false;
      try {
        onProgress?.(fraction);
      } catch (e) {
        observerError = e;
        return false;
      }
      return !signal?.aborted;
    }, koffi.pointer(llama_progress_callback));
    params.progress_callback = progress;
    const lines: string[] = [];
    const restore = setErrorSink((text) => lines.push(text));
    let handle: Pointer | null;
    try {
      handle = await new Promise<Pointer | null>((resolve, reject) =>
        api.llama_model_load_from_file_async(path, params, (err, model) => (err ? reject(err as Error) : resolve(model))),
      );
    } finally {
      restore();
      koffi.unregister(progress);
    }
    if (observerError !== undefined || signal?.aborted) {
      if (handle) api.llama_model_free(handle);
      if (observerError !== undefined) throw observerError;
      throw new AbortError(`the load of ${path} was aborted`, { cause: signal!.reason });
    }
    if (!handle) throw loadError(path, lines);
    return new LlamaModel(llama, handle, path, offloaded);
  }

  /** @internal */ get ptr(): Pointer {
    this.#check();
    return this.#handle;
  }

  /** @internal */ get vocab(): Pointer {
    this.#check();
    return this.#vocab;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** A new context on this model, disposed with it (the same as `new LlamaContext(model, opts)`). */
  createContext(opts: ContextOptions = {}): LlamaContext {
    this.#check();
    return new LlamaContext(this, opts);
  }

  /** Any GGUF metadata value, as llama.cpp renders it to a string. */
  meta(key: string): string | undefined {
    this.#check();
    return this.#metadata.get(key);
  }

  /** All metadata keys and values (arrays are summarised by llama.cpp). */
  metaEntries(): [string, string][] {
    this.#check();
    return [...this.#metadata.entries()];
  }

  /** Text to token ids. `parseSpecial` turns `<think>` etc. into their special ids (default true). */
  tokenize(text: string, opts: { addSpecial?: boolean; parseSpecial?: boolean } = {}): number[] {
    this.#check();
    if (typeof text !== 'string') throw new LynxEngineUsageError(`tokenize() needs a string, got ${describe(text)}`);
    const api = this.llama.api;
    const bytes = Buffer.from(text, 'utf8');
    let out = new Int32Array(bytes.length + 8);
    let n = api.llama_tokenize(this.#vocab, bytes, bytes.length, out, out.length, opts.addSpecial ?? false, opts.parseSpecial ?? true);
    if (n < 0) {
      out = new Int32Array(-n);
      n = api.llama_tokenize(this.#vocab, bytes, bytes.length, out, out.length, opts.addSpecial ?? false, opts.parseSpecial ?? true);
    }
    if (n < 0) throw new ModelLoadError(`tokenization failed for a text of ${bytes.length} bytes`);
    return Array.from(out.subarray(0, n));
  }

  /** Token ids to text. Special tokens are rendered unless `removeSpecial`/`unparseSpecial` say otherwise. */
  detokenize(tokens: readonly number[], opts: { removeSpecial?: boolean; unparseSpecial?: boolean } = {}): string {
    this.#check();
    checkTokens('detokenize()', tokens, this.info.nVocab);
    if (tokens.length === 0) return '';
    const api = this.llama.api;
    const ids = Int32Array.from(tokens);
    let buf = Buffer.alloc(tokens.length * 8 + 16);
    let n = api.llama_detokenize(this.#vocab, ids, ids.length, buf, buf.length, opts.removeSpecial ?? false, opts.unparseSpecial ?? true);
    if (n < 0) {
      buf = Buffer.alloc(-n);
      n = api.llama_detokenize(this.#vocab, ids, ids.length, buf, buf.length, opts.removeSpecial ?? false, opts.unparseSpecial ?? true);
    }
    return buf.subarray(0, n).toString('utf8');
  }

  /** The raw bytes of one token (may be part of a UTF-8 character). Special tokens render as their text. */
  tokenBytes(token: number): Uint8Array {
    this.#check();
    const cached = this.#pieceCache.get(token);
    if (cached) return cached;
    this.#checkToken('tokenBytes()', token);
    const api = this.llama.api;
    let buf = Buffer.alloc(64);
    let n = api.llama_token_to_piece(this.#vocab, token, buf, buf.length, 0, true);
    if (n < 0) {
      buf = Buffer.alloc(-n);
      n = api.llama_token_to_piece(this.#vocab, token, buf, buf.length, 0, true);
    }
    const piece = new Uint8Array(buf.subarray(0, Math.max(0, n)));
    this.#pieceCache.set(token, piece);
    return piece;
  }

  /** The text of one token; incomplete UTF-8 shows as U+FFFD (use a streaming decoder for generated text). */
  tokenPiece(token: number): string {
    return Buffer.from(this.tokenBytes(token)).toString('utf8');
  }

  isEog(token: number): boolean {
    this.#check();
    this.#checkToken('isEog()', token);
    return this.llama.api.llama_vocab_is_eog(this.#vocab, token);
  }

  isControl(token: number): boolean {
    this.#check();
    this.#checkToken('isControl()', token);
    return this.llama.api.llama_vocab_is_control(this.#vocab, token);
  }

  /** Write the model back to GGUF (used after training). */
  saveTo(path: string): void {
    this.llama.api.llama_model_save_to_file(this.ptr, path);
  }

  /**
   * Dispose every context built on this model (and their sequences), then free the weights. Every later call on the
   * model, its contexts or their sequences throws DisposedError. A context whose decode is still running on a worker
   * thread is freed when it returns, and the weights after it. Calling dispose() again does nothing.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const dependent of [...this.#dependents]) dependent.dispose();
    this.#freeIfUnused();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** dispose(), then wait until the native memory is freed (after any decode still running on a worker thread). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
    await this.#freed;
  }

  /** @internal A context (or other native resource on this model) registers itself; dispose() disposes it first. */
  own(dependent: ModelDependent): void {
    this.#check();
    this.#dependents.add(dependent);
  }

  /** @internal Called by a dependent once its native memory is freed; the last one lets a disposed model free itself. */
  disown(dependent: ModelDependent): void {
    this.#dependents.delete(dependent);
    this.#freeIfUnused();
  }

  #freeIfUnused(): void {
    if (!this.#disposed || this.#dependents.size > 0 || !this.#handle) return;
    this.llama.api.llama_model_free(this.#handle);
    this.#handle = null;
    this.#pieceCache.clear();
    this.#markFreed();
  }

  #check(): void {
    if (this.#disposed) throw new DisposedError(`the model ${this.info.path} was disposed: load it again to use it`);
  }

  #checkToken(what: string, token: number): void {
    if (!Number.isInteger(token) || token < 0 || token >= this.info.nVocab) {
      throw new LynxEngineUsageError(`${what}: token ${describe(token)} is not in the vocabulary (ids 0 to ${this.info.nVocab - 1})`);
    }
  }

  #readMetadata(): void {
    const api = this.llama.api;
    const handle = this.#handle;
    const count = api.llama_model_meta_count(handle);
    const keyBuf = Buffer.alloc(256);
    let valBuf = Buffer.alloc(4096);
    for (let i = 0; i < count; i++) {
      const kn = api.llama_model_meta_key_by_index(handle, i, keyBuf, keyBuf.length);
      if (kn < 0) continue;
      let vn = api.llama_model_meta_val_str_by_index(handle, i, valBuf, valBuf.length);
      if (vn >= valBuf.length) {
        valBuf = Buffer.alloc(vn + 1);
        vn = api.llama_model_meta_val_str_by_index(handle, i, valBuf, valBuf.length);
      }
      if (vn < 0) continue;
      this.#metadata.set(keyBuf.subarray(0, kn).toString('utf8'), valBuf.subarray(0, vn).toString('utf8'));
    }
  }

  #singleToken(text: string): number | undefined {
    const ids = this.tokenize(text, { addSpecial: false, parseSpecial: true });
    return ids.length === 1 ? ids[0] : undefined;
  }
}

function modelParams(llama: Llama, opts: LoadModelOptions): { params: Record<string, unknown>; offloaded: boolean } {
  const gpuLayers = opts.gpuLayers ?? 'auto';
  if (gpuLayers !== 'auto' && (typeof gpuLayers !== 'number' || !Number.isInteger(gpuLayers) || gpuLayers < -1)) {
    throw new LynxEngineUsageError(`gpuLayers must be 'auto', -1 (all) or a layer count >= 0, got ${describe(gpuLayers)}`);
  }
  const params = { ...llama.api.llama_model_default_params().p };
  const gpu = llama.devices.some((d) => d.type === 'gpu' || d.type === 'igpu');
  params.n_gpu_layers = gpuLayers === 'auto' ? (gpu ? -1 : 0) : gpuLayers;
  return { params, offloaded: gpu && params.n_gpu_layers !== 0 };
}

function loadError(path: string, lines: string[]): ModelLoadError {
  const reason = lines.map((l) => l.trim()).filter(Boolean).join('; ');
  return new ModelLoadError(`llama.cpp could not load ${path}${reason ? `: ${reason}` : ''}`);
}

/** Fail early, in TypeScript, on the problems llama.cpp would report only as a NULL model. */
function checkGgufFile(path: string): void {
  if (typeof path !== 'string' || path === '') throw new ModelLoadError(`a model path is needed, got ${describe(path)}`);
  if (!existsSync(path)) throw new ModelLoadError(`model file not found: ${path}`);
  const st = statSync(path);
  if (!st.isFile()) throw new ModelLoadError(`not a file: ${path}`);
  if (st.size < 24) throw new ModelLoadError(`${path} is too small to be a GGUF file (${st.size} bytes): truncated?`);
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(4);
    readSync(fd, head, 0, 4, 0);
    if (head.toString('latin1') !== 'GGUF') {
      throw new ModelLoadError(`${path} is not a GGUF file (magic ${JSON.stringify(head.toString('latin1'))}, expected "GGUF")`);
    }
  } finally {
    closeSync(fd);
  }
}
