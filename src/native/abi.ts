/**
 * ABI check: read the library's default llama_model_params / llama_context_params / ggml_opt_params through the
 * declared layouts and compare every field with the defaults of the llama.cpp source we declared against. A layout
 * change in a new build shifts fields and fails here with a clear message, instead of corrupting memory later.
 */
import type { LlamaApi } from './llama.js';
import { GgmlOptBuildType, GgmlOptLossType, GgmlOptOptimizerType, type GgmlOptApi } from './ggml-opt.js';
import { AbiMismatchError } from './errors.js';

const EXPECTED_MODEL_DEFAULTS: Record<string, unknown> = {
  devices: null,
  tensor_buft_overrides: null,
  n_gpu_layers: -1,
  split_mode: 1,
  load_mode: -1,
  lazy_mode: 1,
  main_gpu: 0,
  tensor_split: null,
  progress_callback: null,
  progress_callback_user_data: null,
  kv_overrides: null,
  vocab_only: false,
  check_tensors: false,
  use_extra_bufts: true,
  no_host: false,
  no_alloc: false,
  load_mtp: false,
};

const EXPECTED_CONTEXT_DEFAULTS: Record<string, unknown> = {
  n_ctx: 512,
  n_batch: 2048,
  n_ubatch: 512,
  n_seq_max: 1,
  n_rs_seq: 0,
  n_outputs_max: 0,
  n_outputs_max_per_seq: 1,
  n_threads: 4,
  n_threads_batch: 4,
  ctx_type: 0,
  rope_scaling_type: -1,
  pooling_type: -1,
  attention_type: -1,
  flash_attn_type: -1,
  rope_freq_base: 0,
  rope_freq_scale: 0,
  yarn_ext_factor: -1,
  yarn_attn_factor: -1,
  yarn_beta_fast: -1,
  yarn_beta_slow: -1,
  yarn_orig_ctx: 0,
  defrag_thold: -1,
  cb_eval: null,
  cb_eval_user_data: null,
  type_k: 1,
  type_v: 1,
  abort_callback: null,
  abort_callback_data: null,
  embeddings: false,
  offload_kqv: true,
  no_perf: true,
  op_offload: true,
  swa_full: true,
  kv_unified: false,
  samplers: null,
  n_samplers: 0,
  ctx_other: null,
};

/**
 * `ggml_opt_default_params(NULL, MEAN_SQUARED_ERROR)`: the loss type is the one asked for (a value no other field
 * holds), so a shifted field shows. `get_opt_pars` points at ggml's default callback and is checked as non-null.
 */
const EXPECTED_OPT_DEFAULTS: Record<string, unknown> = {
  backend_sched: null,
  ctx_compute: null,
  inputs: null,
  outputs: null,
  loss_type: GgmlOptLossType.MEAN_SQUARED_ERROR,
  build_type: GgmlOptBuildType.OPT,
  opt_period: 1,
  get_opt_pars_ud: null,
  optimizer: GgmlOptOptimizerType.ADAMW,
};

export function compareDefaults(what: string, actual: Record<string, unknown>, expected: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const [key, want] of Object.entries(expected)) {
    let got = actual[key];
    if (typeof got === 'bigint') got = Number(got);
    if (want === null ? got !== null && got !== undefined && got !== 0 : got !== want) {
      problems.push(`${what}.${key}: expected ${String(want)}, library gave ${String(got)}`);
    }
  }
  return problems;
}

export function checkAbi(api: LlamaApi, opt: GgmlOptApi): void {
  const optDefaults = opt.ggml_opt_default_params(null, GgmlOptLossType.MEAN_SQUARED_ERROR).p;
  const problems = [
    ...compareDefaults('llama_model_params', api.llama_model_default_params().p, EXPECTED_MODEL_DEFAULTS),
    ...compareDefaults('llama_context_params', api.llama_context_default_params().p, EXPECTED_CONTEXT_DEFAULTS),
    ...compareDefaults('ggml_opt_params', optDefaults, EXPECTED_OPT_DEFAULTS),
  ];
  if (!optDefaults.get_opt_pars) problems.push('ggml_opt_params.get_opt_pars: expected a function pointer, library gave null');
  if (problems.length > 0) {
    throw new AbiMismatchError(
      'ABI mismatch: the loaded llama.cpp library does not match the struct layouts declared in src/native/ (llama.ts, ggml-opt.ts) ' +
        '(was @node-llama-cpp/* upgraded without updating the binding?):\n  ' +
        problems.join('\n  '),
    );
  }
}
