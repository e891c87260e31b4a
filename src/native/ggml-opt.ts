/**
 * The slice of `ggml-opt.h` (ggml's optimizer: AdamW/SGD over a static graph, datasets, results) that Lynx uses,
 * declared for koffi from the header of the pinned build. Struct layouts must match it field for field; `abi.ts`
 * checks `ggml_opt_params` against the library's defaults.
 */
import koffi from 'koffi';
import type { LibraryHandle } from 'koffi';
import type { Pointer } from './pointer.js';

// ---- enums ----

/** `enum ggml_opt_loss_type`: how ggml-opt reduces the graph's `outputs` to the loss it minimises. */
export enum GgmlOptLossType {
  MEAN = 0,
  SUM = 1,
  /** Softmax cross-entropy of `outputs` (logits) against the `labels` tensor ggml-opt allocates (one-hot or soft). */
  CROSS_ENTROPY = 2,
  MEAN_SQUARED_ERROR = 3,
}

/** `enum ggml_opt_build_type`: which graphs `ggml_opt_init` builds. */
export enum GgmlOptBuildType {
  FORWARD = 10,
  GRAD = 20,
  OPT = 30,
}

/** `enum ggml_opt_optimizer_type`. */
export enum GgmlOptOptimizerType {
  ADAMW = 0,
  SGD = 1,
}

// ---- structs and callbacks ----

/** `struct ggml_opt_optimizer_params`, as the callback below returns it. */
export interface GgmlOptOptimizerParams {
  adamw: { alpha: number; beta1: number; beta2: number; eps: number; wd: number };
  sgd: { alpha: number; wd: number };
}

export const ggml_opt_optimizer_params = koffi.struct('ggml_opt_optimizer_params', {
  adamw: koffi.struct('ggml_opt_adamw_params', { alpha: 'float', beta1: 'float', beta2: 'float', eps: 'float', wd: 'float' }),
  sgd: koffi.struct('ggml_opt_sgd_params', { alpha: 'float', wd: 'float' }),
});

export const ggml_opt_params = koffi.struct('ggml_opt_params', {
  backend_sched: 'void *',
  ctx_compute: 'void *',
  inputs: 'void *',
  outputs: 'void *',
  loss_type: 'int',
  build_type: 'int',
  opt_period: 'int32_t',
  get_opt_pars: 'void *',
  get_opt_pars_ud: 'void *',
  optimizer: 'int',
});

/** `ggml_opt_params` followed by a guard area: `ggml_opt_default_params` returns it by value (see llama.ts). */
export const ggml_opt_params_guarded = koffi.struct('ggml_opt_params_guarded', {
  p: ggml_opt_params,
  guard: koffi.array('uint8_t', 512),
});

/** `struct ggml_opt_optimizer_params (*ggml_opt_get_optimizer_params)(void * userdata)`: called once per optimizer step. */
export const ggml_opt_get_optimizer_params = koffi.proto('ggml_opt_optimizer_params ggml_opt_get_optimizer_params(void *userdata)');
/** `ggml_opt_epoch_callback`: called after each batch of `ggml_opt_epoch` / `llama_opt_epoch`. */
export const ggml_opt_epoch_callback = koffi.proto(
  'void ggml_opt_epoch_callback(bool train, void *opt_ctx, void *dataset, void *result, int64_t ibatch, int64_t ibatch_max, int64_t t_start_us)',
);

// ---- functions ----

export interface GgmlOptApi {
  ggml_opt_default_params(sched: Pointer | null, lossType: number): { p: Record<string, unknown>; guard: number[] };
  ggml_opt_init(params: Record<string, unknown>): Pointer;
  ggml_opt_free(opt: Pointer): void;
  ggml_opt_alloc(opt: Pointer, backward: boolean): void;
  ggml_opt_eval(opt: Pointer, result: Pointer | null): void;
  ggml_opt_labels(opt: Pointer): Pointer;
  ggml_opt_grad_acc(opt: Pointer, node: Pointer): Pointer | null;
  ggml_opt_dataset_init(typeData: number, typeLabel: number, neDatapoint: number, neLabel: number, ndata: number, ndataShard: number): Pointer;
  ggml_opt_dataset_free(dataset: Pointer): void;
  ggml_opt_dataset_data(dataset: Pointer): Pointer;
  ggml_opt_dataset_labels(dataset: Pointer): Pointer;
  ggml_opt_result_init(): Pointer;
  ggml_opt_result_free(result: Pointer): void;
  ggml_opt_result_reset(result: Pointer): void;
  ggml_opt_result_ndata(result: Pointer, ndata: BigInt64Array): void;
  ggml_opt_result_loss(result: Pointer, loss: Float64Array, unc: Float64Array | null): void;
  ggml_opt_result_accuracy(result: Pointer, acc: Float64Array, unc: Float64Array | null): void;
}

/** Declare the ggml-opt functions (they live in ggml-base). */
export function declareGgmlOpt(ggmlBase: LibraryHandle): GgmlOptApi {
  const vp = 'void *';
  const b = (name: string, ret: unknown, args: unknown[]) => ggmlBase.func(name, ret as never, args as never);
  const api = {
    ggml_opt_default_params: b('ggml_opt_default_params', ggml_opt_params_guarded, [vp, 'int']),
    ggml_opt_init: b('ggml_opt_init', vp, [ggml_opt_params]),
    ggml_opt_free: b('ggml_opt_free', 'void', [vp]),
    ggml_opt_alloc: b('ggml_opt_alloc', 'void', [vp, 'bool']),
    ggml_opt_eval: b('ggml_opt_eval', 'void', [vp, vp]),
    ggml_opt_labels: b('ggml_opt_labels', vp, [vp]),
    ggml_opt_grad_acc: b('ggml_opt_grad_acc', vp, [vp, vp]),
    ggml_opt_dataset_init: b('ggml_opt_dataset_init', vp, ['int', 'int', 'int64_t', 'int64_t', 'int64_t', 'int64_t']),
    ggml_opt_dataset_free: b('ggml_opt_dataset_free', 'void', [vp]),
    ggml_opt_dataset_data: b('ggml_opt_dataset_data', vp, [vp]),
    ggml_opt_dataset_labels: b('ggml_opt_dataset_labels', vp, [vp]),
    ggml_opt_result_init: b('ggml_opt_result_init', vp, []),
    ggml_opt_result_free: b('ggml_opt_result_free', 'void', [vp]),
    ggml_opt_result_reset: b('ggml_opt_result_reset', 'void', [vp]),
    ggml_opt_result_ndata: b('ggml_opt_result_ndata', 'void', [vp, vp]),
    ggml_opt_result_loss: b('ggml_opt_result_loss', 'void', [vp, vp, vp]),
    ggml_opt_result_accuracy: b('ggml_opt_result_accuracy', 'void', [vp, vp, vp]),
  };
  return api as unknown as GgmlOptApi;
}
