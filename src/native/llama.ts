/**
 * The slice of `llama.h` that Lynx uses, declared for koffi from the exact header of the pinned build
 * (`@node-llama-cpp/linux-x64@3.22.1`, llama.cpp release bundled as `v0.5.0`). Struct layouts here must match that
 * header field for field; `abi.ts` verifies them at load time against the library's own defaults. The ggml side
 * (`ggml.h`, `ggml-backend.h`, `ggml-opt.h`) is declared in ggml.ts and ggml-opt.ts.
 */
import koffi from 'koffi';
import type { LibraryHandle, TypeObject } from 'koffi';
import { ggml_log_callback, type GgmlApi } from './ggml.js';
import type { Pointer } from './pointer.js';

// ---- structs (field order and types copied from llama.h) ----

export const llama_model_params = koffi.struct('llama_model_params', {
  devices: 'void *',
  tensor_buft_overrides: 'void *',
  n_gpu_layers: 'int32_t',
  split_mode: 'int32_t',
  load_mode: 'int32_t',
  lazy_mode: 'int32_t',
  main_gpu: 'int32_t',
  tensor_split: 'void *',
  progress_callback: 'void *',
  progress_callback_user_data: 'void *',
  kv_overrides: 'void *',
  vocab_only: 'bool',
  check_tensors: 'bool',
  use_extra_bufts: 'bool',
  no_host: 'bool',
  no_alloc: 'bool',
  load_mtp: 'bool',
});

export const llama_context_params = koffi.struct('llama_context_params', {
  n_ctx: 'uint32_t',
  n_batch: 'uint32_t',
  n_ubatch: 'uint32_t',
  n_seq_max: 'uint32_t',
  n_rs_seq: 'uint32_t',
  n_outputs_max: 'uint32_t',
  n_outputs_max_per_seq: 'uint32_t',
  n_threads: 'int32_t',
  n_threads_batch: 'int32_t',
  ctx_type: 'int32_t',
  rope_scaling_type: 'int32_t',
  pooling_type: 'int32_t',
  attention_type: 'int32_t',
  flash_attn_type: 'int32_t',
  rope_freq_base: 'float',
  rope_freq_scale: 'float',
  yarn_ext_factor: 'float',
  yarn_attn_factor: 'float',
  yarn_beta_fast: 'float',
  yarn_beta_slow: 'float',
  yarn_orig_ctx: 'uint32_t',
  defrag_thold: 'float',
  cb_eval: 'void *',
  cb_eval_user_data: 'void *',
  type_k: 'int32_t',
  type_v: 'int32_t',
  abort_callback: 'void *',
  abort_callback_data: 'void *',
  embeddings: 'bool',
  offload_kqv: 'bool',
  no_perf: 'bool',
  op_offload: 'bool',
  swa_full: 'bool',
  kv_unified: 'bool',
  samplers: 'void *',
  n_samplers: 'size_t',
  ctx_other: 'void *',
});

/**
 * The same structs followed by a guard area. Functions that *return* these structs by value are declared with the
 * guarded type so that a newer library whose struct grew cannot write past our buffer while we check the ABI.
 */
const GUARD_BYTES = 512;
export const llama_model_params_guarded = koffi.struct('llama_model_params_guarded', {
  p: llama_model_params,
  guard: koffi.array('uint8_t', GUARD_BYTES),
});
export const llama_context_params_guarded = koffi.struct('llama_context_params_guarded', {
  p: llama_context_params,
  guard: koffi.array('uint8_t', GUARD_BYTES),
});

export const llama_batch = koffi.struct('llama_batch', {
  n_tokens: 'int32_t',
  token: 'int32_t *',
  embd: 'float *',
  pos: 'int32_t *',
  n_seq_id: 'int32_t *',
  seq_id: 'int32_t **',
  logits: 'int8_t *',
});

export const llama_sampler_chain_params = koffi.struct('llama_sampler_chain_params', { no_perf: 'bool' });

export const llama_token_data = koffi.struct('llama_token_data', { id: 'int32_t', logit: 'float', p: 'float' });
export const llama_token_data_array = koffi.struct('llama_token_data_array', {
  data: 'void *',
  size: 'size_t',
  selected: 'int64_t',
  sorted: 'bool',
});

// ---- training (llama.h: llama_opt_*) ----

export const llama_opt_params = koffi.struct('llama_opt_params', {
  n_ctx_train: 'uint32_t',
  param_filter: 'void *',
  param_filter_ud: 'void *',
  get_opt_pars: 'void *',
  get_opt_pars_ud: 'void *',
  optimizer_type: 'int',
});
/** `bool (*llama_opt_param_filter)(const struct ggml_tensor * tensor, void * userdata)` */
export const llama_opt_param_filter = koffi.proto('bool llama_opt_param_filter(void *tensor, void *userdata)');
/** `bool (*llama_progress_callback)(float progress, void * user_data)`: false cancels a model load. */
export const llama_progress_callback = koffi.proto('bool llama_progress_callback(float progress, void *user_data)');

/** The ggml functions the engine calls through this API (declared once, in ggml.ts). */
type EngineGgml = Pick<
  GgmlApi,
  | 'ggml_backend_load_all_from_path'
  | 'ggml_backend_dev_count'
  | 'ggml_backend_dev_get'
  | 'ggml_backend_dev_name'
  | 'ggml_backend_dev_description'
  | 'ggml_backend_dev_type'
  | 'ggml_backend_tensor_get'
  | 'ggml_get_name'
  | 'ggml_nbytes'
>;

export interface LlamaApi extends EngineGgml {
  // backend
  llama_backend_init(): void;
  llama_log_set(cb: Pointer | null, ud: Pointer | null): void;
  llama_supports_gpu_offload(): boolean;
  llama_print_system_info(): string;
  // params
  llama_model_default_params(): { p: Record<string, unknown>; guard: number[] };
  llama_context_default_params(): { p: Record<string, unknown>; guard: number[] };
  // model
  llama_model_load_from_file(path: string, params: Record<string, unknown>): Pointer | null;
  /** The same load on a libuv worker thread; llama.cpp's callbacks (progress, log) are relayed to the main thread. */
  llama_model_load_from_file_async(path: string, params: Record<string, unknown>, done: (err: unknown, model: Pointer | null) => void): void;
  llama_model_free(model: Pointer): void;
  llama_model_get_vocab(model: Pointer): Pointer;
  llama_model_n_ctx_train(model: Pointer): number;
  llama_model_n_embd(model: Pointer): number;
  llama_model_n_layer(model: Pointer): number;
  llama_model_n_head(model: Pointer): number;
  llama_model_n_head_kv(model: Pointer): number;
  llama_model_size(model: Pointer): number | bigint;
  llama_model_n_params(model: Pointer): number | bigint;
  llama_model_desc(model: Pointer, buf: Buffer, size: number): number;
  llama_model_meta_count(model: Pointer): number;
  llama_model_meta_key_by_index(model: Pointer, i: number, buf: Buffer, size: number): number;
  llama_model_meta_val_str_by_index(model: Pointer, i: number, buf: Buffer, size: number): number;
  llama_model_meta_val_str(model: Pointer, key: string, buf: Buffer, size: number): number;
  llama_model_chat_template(model: Pointer, name: string | null): string | null;
  llama_model_save_to_file(model: Pointer, path: string): void;
  // vocab
  llama_vocab_n_tokens(vocab: Pointer): number;
  llama_vocab_type(vocab: Pointer): number;
  llama_vocab_bos(vocab: Pointer): number;
  llama_vocab_eos(vocab: Pointer): number;
  llama_vocab_eot(vocab: Pointer): number;
  llama_vocab_pad(vocab: Pointer): number;
  llama_vocab_is_eog(vocab: Pointer, token: number): boolean;
  llama_vocab_is_control(vocab: Pointer, token: number): boolean;
  llama_vocab_get_add_bos(vocab: Pointer): boolean;
  llama_vocab_get_text(vocab: Pointer, token: number): string;
  llama_tokenize(vocab: Pointer, text: Buffer, len: number, out: Int32Array, max: number, addSpecial: boolean, parseSpecial: boolean): number;
  llama_token_to_piece(vocab: Pointer, token: number, buf: Buffer, len: number, lstrip: number, special: boolean): number;
  llama_detokenize(vocab: Pointer, tokens: Int32Array, n: number, buf: Buffer, len: number, removeSpecial: boolean, unparseSpecial: boolean): number;
  // context
  llama_init_from_model(model: Pointer, params: Record<string, unknown>): Pointer | null;
  llama_free(ctx: Pointer): void;
  llama_n_ctx(ctx: Pointer): number;
  llama_n_batch(ctx: Pointer): number;
  llama_n_seq_max(ctx: Pointer): number;
  llama_set_n_threads(ctx: Pointer, n: number, nBatch: number): void;
  llama_get_memory(ctx: Pointer): Pointer;
  llama_memory_clear(mem: Pointer, data: boolean): void;
  llama_memory_seq_rm(mem: Pointer, seq: number, p0: number, p1: number): boolean;
  llama_memory_seq_cp(mem: Pointer, src: number, dst: number, p0: number, p1: number): void;
  llama_memory_seq_pos_max(mem: Pointer, seq: number): number;
  llama_decode(ctx: Pointer, batch: Record<string, unknown>): number;
  /** The same decode on a libuv worker thread (the eval callback, when set, is relayed to the main thread). */
  llama_decode_async(ctx: Pointer, batch: Record<string, unknown>, done: (err: unknown, rc: number) => void): void;
  llama_synchronize(ctx: Pointer): void;
  llama_get_logits_ith(ctx: Pointer, i: number): Pointer | null;
  // sampling
  llama_sampler_chain_default_params(): Record<string, unknown>;
  llama_sampler_chain_init(params: Record<string, unknown>): Pointer;
  llama_sampler_chain_add(chain: Pointer, s: Pointer): void;
  llama_sampler_init_greedy(): Pointer;
  llama_sampler_init_dist(seed: number): Pointer;
  llama_sampler_init_top_k(k: number): Pointer;
  llama_sampler_init_top_p(p: number, minKeep: number): Pointer;
  llama_sampler_init_min_p(p: number, minKeep: number): Pointer;
  llama_sampler_init_temp(t: number): Pointer;
  llama_sampler_init_mirostat(nVocab: number, seed: number, tau: number, eta: number, m: number): Pointer;
  llama_sampler_init_mirostat_v2(seed: number, tau: number, eta: number): Pointer;
  llama_sampler_sample(s: Pointer, ctx: Pointer, idx: number): number;
  /** The same call on a libuv worker thread: sequences of one batch are sampled in parallel. */
  llama_sampler_sample_async(s: Pointer, ctx: Pointer, idx: number, done: (err: unknown, token: number) => void): void;
  llama_sampler_apply(s: Pointer, cur: Pointer): void;
  llama_sampler_accept(s: Pointer, token: number): void;
  llama_sampler_free(s: Pointer): void;
  llama_sampler_clone(s: Pointer): Pointer;
  // training
  llama_n_ubatch(ctx: Pointer): number;
  llama_opt_init(ctx: Pointer, model: Pointer, params: Record<string, unknown>): void;
  llama_opt_epoch(ctx: Pointer, dataset: Pointer, resultTrain: Pointer | null, resultEval: Pointer | null, idataSplit: number, cbTrain: unknown, cbEval: unknown): void;
  /**
   * `const ggml_tensor * llama_model::get_tensor(const char * name) const`, a C++ member function (not in llama.h)
   * that llama.cpp's training path needs to reach `token_embd.weight`; undefined when the build does not export it.
   */
  llama_model_get_tensor?: (model: Pointer, name: string) => Pointer | null;
}

/** Declare every function on the loaded libllama; `ggml` supplies the ggml functions the engine uses. */
export function declareApi(llama: LibraryHandle, ggml: GgmlApi): LlamaApi {
  const f = (lib: LibraryHandle, name: string, ret: string | TypeObject, args: (string | TypeObject)[]) =>
    lib.func(name, ret, args);
  const vp = 'void *';
  const sample = f(llama, 'llama_sampler_sample', 'int32_t', [vp, vp, 'int32_t']);
  const engineGgml: EngineGgml = {
    ggml_backend_load_all_from_path: ggml.ggml_backend_load_all_from_path,
    ggml_backend_dev_count: ggml.ggml_backend_dev_count,
    ggml_backend_dev_get: ggml.ggml_backend_dev_get,
    ggml_backend_dev_name: ggml.ggml_backend_dev_name,
    ggml_backend_dev_description: ggml.ggml_backend_dev_description,
    ggml_backend_dev_type: ggml.ggml_backend_dev_type,
    ggml_backend_tensor_get: ggml.ggml_backend_tensor_get,
    ggml_get_name: ggml.ggml_get_name,
    ggml_nbytes: ggml.ggml_nbytes,
  };
  let getTensor: LlamaApi['llama_model_get_tensor'];
  try {
    // A non-virtual member function, called with the model pointer as `this` (Itanium C++ ABI); callers check every
    // result by name, type and shape.
    getTensor = f(llama, '_ZNK11llama_model10get_tensorEPKc', vp, [vp, 'str']) as LlamaApi['llama_model_get_tensor'];
  } catch {
    getTensor = undefined;
  }
  const loadModel = f(llama, 'llama_model_load_from_file', vp, ['str', llama_model_params]);
  const decode = f(llama, 'llama_decode', 'int32_t', [vp, llama_batch]);
  const api = {
    ...engineGgml,
    llama_backend_init: f(llama, 'llama_backend_init', 'void', []),
    llama_log_set: f(llama, 'llama_log_set', 'void', [koffi.pointer(ggml_log_callback), vp]),
    llama_supports_gpu_offload: f(llama, 'llama_supports_gpu_offload', 'bool', []),
    llama_print_system_info: f(llama, 'llama_print_system_info', 'str', []),
    llama_model_default_params: f(llama, 'llama_model_default_params', llama_model_params_guarded, []),
    llama_context_default_params: f(llama, 'llama_context_default_params', llama_context_params_guarded, []),
    llama_model_load_from_file: loadModel,
    llama_model_load_from_file_async: loadModel.async,
    llama_model_free: f(llama, 'llama_model_free', 'void', [vp]),
    llama_model_get_vocab: f(llama, 'llama_model_get_vocab', vp, [vp]),
    llama_model_n_ctx_train: f(llama, 'llama_model_n_ctx_train', 'int32_t', [vp]),
    llama_model_n_embd: f(llama, 'llama_model_n_embd', 'int32_t', [vp]),
    llama_model_n_layer: f(llama, 'llama_model_n_layer', 'int32_t', [vp]),
    llama_model_n_head: f(llama, 'llama_model_n_head', 'int32_t', [vp]),
    llama_model_n_head_kv: f(llama, 'llama_model_n_head_kv', 'int32_t', [vp]),
    llama_model_size: f(llama, 'llama_model_size', 'uint64_t', [vp]),
    llama_model_n_params: f(llama, 'llama_model_n_params', 'uint64_t', [vp]),
    llama_model_desc: f(llama, 'llama_model_desc', 'int32_t', [vp, vp, 'size_t']),
    llama_model_meta_count: f(llama, 'llama_model_meta_count', 'int32_t', [vp]),
    llama_model_meta_key_by_index: f(llama, 'llama_model_meta_key_by_index', 'int32_t', [vp, 'int32_t', vp, 'size_t']),
    llama_model_meta_val_str_by_index: f(llama, 'llama_model_meta_val_str_by_index', 'int32_t', [vp, 'int32_t', vp, 'size_t']),
    llama_model_meta_val_str: f(llama, 'llama_model_meta_val_str', 'int32_t', [vp, 'str', vp, 'size_t']),
    llama_model_chat_template: f(llama, 'llama_model_chat_template', 'str', [vp, 'str']),
    llama_model_save_to_file: f(llama, 'llama_model_save_to_file', 'void', [vp, 'str']),
    llama_vocab_n_tokens: f(llama, 'llama_vocab_n_tokens', 'int32_t', [vp]),
    llama_vocab_type: f(llama, 'llama_vocab_type', 'int', [vp]),
    llama_vocab_bos: f(llama, 'llama_vocab_bos', 'int32_t', [vp]),
    llama_vocab_eos: f(llama, 'llama_vocab_eos', 'int32_t', [vp]),
    llama_vocab_eot: f(llama, 'llama_vocab_eot', 'int32_t', [vp]),
    llama_vocab_pad: f(llama, 'llama_vocab_pad', 'int32_t', [vp]),
    llama_vocab_is_eog: f(llama, 'llama_vocab_is_eog', 'bool', [vp, 'int32_t']),
    llama_vocab_is_control: f(llama, 'llama_vocab_is_control', 'bool', [vp, 'int32_t']),
    llama_vocab_get_add_bos: f(llama, 'llama_vocab_get_add_bos', 'bool', [vp]),
    llama_vocab_get_text: f(llama, 'llama_vocab_get_text', 'str', [vp, 'int32_t']),
    llama_tokenize: f(llama, 'llama_tokenize', 'int32_t', [vp, vp, 'int32_t', vp, 'int32_t', 'bool', 'bool']),
    llama_token_to_piece: f(llama, 'llama_token_to_piece', 'int32_t', [vp, 'int32_t', vp, 'int32_t', 'int32_t', 'bool']),
    llama_detokenize: f(llama, 'llama_detokenize', 'int32_t', [vp, vp, 'int32_t', vp, 'int32_t', 'bool', 'bool']),
    llama_init_from_model: f(llama, 'llama_init_from_model', vp, [vp, llama_context_params]),
    llama_free: f(llama, 'llama_free', 'void', [vp]),
    llama_n_ctx: f(llama, 'llama_n_ctx', 'uint32_t', [vp]),
    llama_n_batch: f(llama, 'llama_n_batch', 'uint32_t', [vp]),
    llama_n_seq_max: f(llama, 'llama_n_seq_max', 'uint32_t', [vp]),
    llama_set_n_threads: f(llama, 'llama_set_n_threads', 'void', [vp, 'int32_t', 'int32_t']),
    llama_get_memory: f(llama, 'llama_get_memory', vp, [vp]),
    llama_memory_clear: f(llama, 'llama_memory_clear', 'void', [vp, 'bool']),
    llama_memory_seq_rm: f(llama, 'llama_memory_seq_rm', 'bool', [vp, 'int32_t', 'int32_t', 'int32_t']),
    llama_memory_seq_cp: f(llama, 'llama_memory_seq_cp', 'void', [vp, 'int32_t', 'int32_t', 'int32_t', 'int32_t']),
    llama_memory_seq_pos_max: f(llama, 'llama_memory_seq_pos_max', 'int32_t', [vp, 'int32_t']),
    llama_decode: decode,
    llama_decode_async: decode.async,
    llama_synchronize: f(llama, 'llama_synchronize', 'void', [vp]),
    llama_get_logits_ith: f(llama, 'llama_get_logits_ith', vp, [vp, 'int32_t']),
    llama_sampler_chain_default_params: f(llama, 'llama_sampler_chain_default_params', llama_sampler_chain_params, []),
    llama_sampler_chain_init: f(llama, 'llama_sampler_chain_init', vp, [llama_sampler_chain_params]),
    llama_sampler_chain_add: f(llama, 'llama_sampler_chain_add', 'void', [vp, vp]),
    llama_sampler_init_greedy: f(llama, 'llama_sampler_init_greedy', vp, []),
    llama_sampler_init_dist: f(llama, 'llama_sampler_init_dist', vp, ['uint32_t']),
    llama_sampler_init_top_k: f(llama, 'llama_sampler_init_top_k', vp, ['int32_t']),
    llama_sampler_init_top_p: f(llama, 'llama_sampler_init_top_p', vp, ['float', 'size_t']),
    llama_sampler_init_min_p: f(llama, 'llama_sampler_init_min_p', vp, ['float', 'size_t']),
    llama_sampler_init_temp: f(llama, 'llama_sampler_init_temp', vp, ['float']),
    llama_sampler_init_mirostat: f(llama, 'llama_sampler_init_mirostat', vp, ['int32_t', 'uint32_t', 'float', 'float', 'int32_t']),
    llama_sampler_init_mirostat_v2: f(llama, 'llama_sampler_init_mirostat_v2', vp, ['uint32_t', 'float', 'float']),
    llama_sampler_sample: sample,
    llama_sampler_sample_async: sample.async,
    llama_sampler_apply: f(llama, 'llama_sampler_apply', 'void', [vp, vp]),
    llama_sampler_accept: f(llama, 'llama_sampler_accept', 'void', [vp, 'int32_t']),
    llama_sampler_free: f(llama, 'llama_sampler_free', 'void', [vp]),
    llama_sampler_clone: f(llama, 'llama_sampler_clone', vp, [vp]),
    llama_n_ubatch: f(llama, 'llama_n_ubatch', 'uint32_t', [vp]),
    llama_opt_init: f(llama, 'llama_opt_init', 'void', [vp, vp, llama_opt_params]),
    llama_opt_epoch: f(llama, 'llama_opt_epoch', 'void', [vp, vp, vp, vp, 'int64_t', vp, vp]),
    llama_model_get_tensor: getTensor,
  };
  return api as unknown as LlamaApi;
}
