/**
 * A GGUF model loaded by llama.cpp: its shape, metadata, special tokens, chat template and tokenizer.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { loadLlama, setErrorSink, type Llama, type LoadLlamaOptions } from '../native/library.js';
import type { Pointer } from '../native/pointer.js';
import { DisposedError, ModelLoadError } from './errors.js';

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
  /** Layers to offload to the GPU: 'auto' (all when a GPU build is loaded), or a number. Default 'auto'. */
  gpuLayers?: number | 'auto';
  /** Options for loading llama.cpp itself if it is not loaded yet. */
  llama?: LoadLlamaOptions;
}

const VOCAB_TYPES = ['none', 'spm', 'bpe', 'wpm', 'ugm', 'rwkv', 'plamo2', 'test'];

export class LlamaModel {
  readonly info: ModelInfo;
  /** @internal */ readonly llama: Llama;
  private handle: Pointer | null;
  /** @internal */ readonly vocab: Pointer;
  private readonly metadata = new Map<string, string>();
  private readonly pieceCache = new Map<number, Uint8Array>();

  private constructor(llama: Llama, handle: Pointer, path: string) {
    this.llama = llama;
    this.handle = handle;
    const api = llama.api;
    this.vocab = api.llama_model_get_vocab(handle);
    this.readMetadata();
    const desc = Buffer.alloc(256);
    const n = api.llama_model_desc(handle, desc, desc.length);
    const vocab = this.vocab;
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
        thinkStart: this.singleToken('<think>'),
        thinkEnd: this.singleToken('</think>'),
      },
    };
  }

  /** Load a GGUF file. Throws ModelLoadError with llama.cpp's own reason when it refuses the file. */
  static load(path: string, opts: LoadModelOptions = {}): LlamaModel {
    checkGgufFile(path);
    const llama = loadLlama(opts.llama);
    const api = llama.api;
    const params = { ...api.llama_model_default_params().p };
    const gpu = llama.devices.some((d) => d.type === 'gpu' || d.type === 'igpu');
    params.n_gpu_layers = opts.gpuLayers === undefined || opts.gpuLayers === 'auto' ? (gpu ? -1 : 0) : opts.gpuLayers;
    // vocab_only stays off: this build aborts (GGML_ASSERT) when model info is read from a vocabulary-only model.
    const errors = captureErrors(llama, () => api.llama_model_load_from_file(path, params));
    if (!errors.result) {
      const reason = errors.lines.map((l) => l.trim()).filter(Boolean).join('; ');
      throw new ModelLoadError(`llama.cpp could not load ${path}${reason ? `: ${reason}` : ''}`);
    }
    return new LlamaModel(llama, errors.result, path);
  }

  /** @internal */ get ptr(): Pointer {
    if (!this.handle) throw new DisposedError('the model was disposed');
    return this.handle;
  }

  get disposed(): boolean {
    return this.handle === null;
  }

  /** Any GGUF metadata value, as llama.cpp renders it to a string. */
  meta(key: string): string | undefined {
    return this.metadata.get(key);
  }

  /** All metadata keys and values (arrays are summarised by llama.cpp). */
  metaEntries(): [string, string][] {
    return [...this.metadata.entries()];
  }

  /** Text to token ids. `parseSpecial` turns `<think>` etc. into their special ids (default true). */
  tokenize(text: string, opts: { addSpecial?: boolean; parseSpecial?: boolean } = {}): number[] {
    const api = this.llama.api;
    const bytes = Buffer.from(text, 'utf8');
    let out = new Int32Array(bytes.length + 8);
    let n = api.llama_tokenize(this.vocab, bytes, bytes.length, out, out.length, opts.addSpecial ?? false, opts.parseSpecial ?? true);
    if (n < 0) {
      out = new Int32Array(-n);
      n = api.llama_tokenize(this.vocab, bytes, bytes.length, out, out.length, opts.addSpecial ?? false, opts.parseSpecial ?? true);
    }
    if (n < 0) throw new ModelLoadError(`tokenization failed for a text of ${bytes.length} bytes`);
    return Array.from(out.subarray(0, n));
  }

  /** Token ids to text. Special tokens are rendered unless `removeSpecial`/`unparseSpecial` say otherwise. */
  detokenize(tokens: readonly number[], opts: { removeSpecial?: boolean; unparseSpecial?: boolean } = {}): string {
    if (tokens.length === 0) return '';
    const api = this.llama.api;
    const ids = Int32Array.from(tokens);
    let buf = Buffer.alloc(tokens.length * 8 + 16);
    let n = api.llama_detokenize(this.vocab, ids, ids.length, buf, buf.length, opts.removeSpecial ?? false, opts.unparseSpecial ?? true);
    if (n < 0) {
      buf = Buffer.alloc(-n);
      n = api.llama_detokenize(this.vocab, ids, ids.length, buf, buf.length, opts.removeSpecial ?? false, opts.unparseSpecial ?? true);
    }
    return buf.subarray(0, n).toString('utf8');
  }

  /** The raw bytes of one token (may be part of a UTF-8 character). Special tokens render as their text. */
  tokenBytes(token: number): Uint8Array {
    const cached = this.pieceCache.get(token);
    if (cached) return cached;
    const api = this.llama.api;
    let buf = Buffer.alloc(64);
    let n = api.llama_token_to_piece(this.vocab, token, buf, buf.length, 0, true);
    if (n < 0) {
      buf = Buffer.alloc(-n);
      n = api.llama_token_to_piece(this.vocab, token, buf, buf.length, 0, true);
    }
    const piece = new Uint8Array(buf.subarray(0, Math.max(0, n)));
    this.pieceCache.set(token, piece);
    return piece;
  }

  /** The text of one token; incomplete UTF-8 shows as U+FFFD (use a streaming decoder for generated text). */
  tokenPiece(token: number): string {
    return Buffer.from(this.tokenBytes(token)).toString('utf8');
  }

  isEog(token: number): boolean {
    return this.llama.api.llama_vocab_is_eog(this.vocab, token);
  }

  isControl(token: number): boolean {
    return this.llama.api.llama_vocab_is_control(this.vocab, token);
  }

  /** Write the model back to GGUF (used after training). */
  saveTo(path: string): void {
    this.llama.api.llama_model_save_to_file(this.ptr, path);
  }

  dispose(): void {
    if (this.handle) {
      this.llama.api.llama_model_free(this.handle);
      this.handle = null;
    }
  }

  private readMetadata(): void {
    const api = this.llama.api;
    const count = api.llama_model_meta_count(this.ptr);
    const keyBuf = Buffer.alloc(256);
    let valBuf = Buffer.alloc(4096);
    for (let i = 0; i < count; i++) {
      const kn = api.llama_model_meta_key_by_index(this.ptr, i, keyBuf, keyBuf.length);
      if (kn < 0) continue;
      let vn = api.llama_model_meta_val_str_by_index(this.ptr, i, valBuf, valBuf.length);
      if (vn >= valBuf.length) {
        valBuf = Buffer.alloc(vn + 1);
        vn = api.llama_model_meta_val_str_by_index(this.ptr, i, valBuf, valBuf.length);
      }
      if (vn < 0) continue;
      this.metadata.set(keyBuf.subarray(0, kn).toString('utf8'), valBuf.subarray(0, vn).toString('utf8'));
    }
  }

  private singleToken(text: string): number | undefined {
    const ids = this.tokenize(text, { addSpecial: false, parseSpecial: true });
    return ids.length === 1 ? ids[0] : undefined;
  }
}

/** Fail early, in TypeScript, on the problems llama.cpp would report only as a NULL model. */
function checkGgufFile(path: string): void {
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

/** Run a llama.cpp call while collecting its error log lines, to put llama.cpp's reason in our error message. */
function captureErrors<T>(_llama: Llama, fn: () => T): { result: T; lines: string[] } {
  const lines: string[] = [];
  const restore = setErrorSink((text) => lines.push(text));
  try {
    return { result: fn(), lines };
  } finally {
    restore();
  }
}
