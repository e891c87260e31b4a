/**
 * The slice of `ggml.h` and `ggml-backend.h` that Lynx uses, declared for koffi from the headers of the pinned build
 * (`@node-llama-cpp/linux-x64@3.22.1`): enums, the `ggml_tensor` fields read directly, the callbacks, and the
 * functions that build and run graphs (src/graph/), read tensors (engine taps) and find devices (library loading).
 */
import koffi from 'koffi';
import type { LibraryHandle } from 'koffi';
import type { Pointer } from './pointer.js';

// ---- enums and constants (ggml.h) ----

/** `enum ggml_type` (the values Lynx creates or checks). */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q8_0 = 8,
  I32 = 26,
  BF16 = 30,
}

/** `GGML_OP_NONE`: a tensor that no operation computes (a weight or an input). */
export const GGML_OP_NONE = 0;
/** `GGML_TENSOR_FLAG_PARAM` in `ggml_tensor.flags`: the optimizer updates this tensor. */
export const GGML_TENSOR_FLAG_PARAM = 4;
/** `GGML_ROPE_TYPE_*`: llama rotates adjacent pairs (NORM), qwen2 the two halves of a head (NEOX). */
export enum GgmlRopeType {
  NORM = 0,
  NEOX = 2,
}
/** `GGML_DEFAULT_GRAPH_SIZE`: nodes of a graph made by `ggml_new_graph`. */
export const GGML_DEFAULT_GRAPH_SIZE = 2048;
/** `enum ggml_backend_dev_type`, in order. */
export const GGML_BACKEND_DEVICE_TYPES = ['cpu', 'gpu', 'igpu', 'accel'] as const;
export const GGML_BACKEND_DEVICE_TYPE_CPU = 0;

/**
 * Byte offsets of `struct ggml_tensor` fields (ggml.h, LP64). Read with koffi.decode where no accessor exists; every
 * reader checks what it reads against an accessor (type/ne against `ggml_nbytes` for taps, name against
 * `ggml_get_name` and flags against `ggml_set_param` on llama.cpp's training path).
 */
export const GGML_TENSOR_OFFSETS = {
  type: 0,
  ne: 16, // int64_t ne[4]
  nb: 48, // size_t nb[4]
  op: 80, // enum ggml_op
  flags: 148, // int32_t flags, after op and op_params[16]
  name: 256, // char name[64]
} as const;

// ---- structs and callbacks ----

export const ggml_init_params = koffi.struct('ggml_init_params', { mem_size: 'size_t', mem_buffer: 'void *', no_alloc: 'bool' });

/** `bool (*ggml_backend_sched_eval_callback)(struct ggml_tensor * t, bool ask, void * user_data)` */
export const ggml_backend_sched_eval_callback = koffi.proto('bool ggml_backend_sched_eval_callback(void *t, bool ask, void *user_data)');
/** `void (*ggml_log_callback)(enum ggml_log_level level, const char * text, void * user_data)` */
export const ggml_log_callback = koffi.proto('void ggml_log_callback(int level, const char *text, void *user_data)');
/** `ggml_backend_set_n_threads_t`, found through `ggml_backend_reg_get_proc_address` on the CPU backend. */
export const ggml_backend_set_n_threads_t = koffi.proto('void ggml_backend_set_n_threads_t(void *backend, int n_threads)');

// ---- functions ----

type T = Pointer; // struct ggml_tensor *

export interface GgmlApi {
  // contexts and tensors (ggml.h)
  ggml_init(p: { mem_size: number; mem_buffer: null; no_alloc: boolean }): Pointer;
  ggml_free(ctx: Pointer): void;
  ggml_tensor_overhead(): number;
  ggml_graph_overhead_custom(size: number, grads: boolean): number;
  ggml_new_tensor_1d(ctx: Pointer, type: number, ne0: number): T;
  ggml_new_tensor_2d(ctx: Pointer, type: number, ne0: number, ne1: number): T;
  ggml_set_param(t: T): void;
  ggml_set_input(t: T): void;
  ggml_set_output(t: T): void;
  ggml_set_name(t: T, name: string): T;
  ggml_get_name(t: T): string;
  ggml_nbytes(t: T): number;
  ggml_nelements(t: T): number;
  // operations (ggml.h)
  ggml_get_rows(ctx: Pointer, a: T, b: T): T;
  ggml_rms_norm(ctx: Pointer, a: T, eps: number): T;
  ggml_mul(ctx: Pointer, a: T, b: T): T;
  ggml_add(ctx: Pointer, a: T, b: T): T;
  ggml_mul_mat(ctx: Pointer, a: T, b: T): T;
  ggml_reshape_2d(ctx: Pointer, a: T, ne0: number, ne1: number): T;
  ggml_reshape_4d(ctx: Pointer, a: T, ne0: number, ne1: number, ne2: number, ne3: number): T;
  ggml_permute(ctx: Pointer, a: T, ax0: number, ax1: number, ax2: number, ax3: number): T;
  ggml_cont(ctx: Pointer, a: T): T;
  ggml_rope_ext(ctx: Pointer, a: T, pos: T, freq: T | null, nDims: number, mode: number, nCtxOrig: number, base: number, scale: number, extFactor: number, attnFactor: number, betaFast: number, betaSlow: number): T;
  ggml_diag_mask_inf(ctx: Pointer, a: T, nPast: number): T;
  ggml_soft_max_ext(ctx: Pointer, a: T, mask: T | null, scale: number, maxBias: number): T;
  ggml_silu(ctx: Pointer, a: T): T;
  // graphs (ggml.h)
  ggml_new_graph_custom(ctx: Pointer, size: number, grads: boolean): Pointer;
  ggml_build_forward_expand(graph: Pointer, t: T): void;
  // backends, buffers, schedulers (ggml-backend.h)
  ggml_backend_load_all_from_path(dir: string): void;
  ggml_backend_dev_count(): number;
  ggml_backend_dev_get(i: number): Pointer;
  ggml_backend_dev_name(dev: Pointer): string;
  ggml_backend_dev_description(dev: Pointer): string;
  ggml_backend_dev_type(dev: Pointer): number;
  ggml_backend_init_by_type(type: number, params: string | null): Pointer | null;
  ggml_backend_free(backend: Pointer): void;
  ggml_backend_get_device(backend: Pointer): Pointer;
  ggml_backend_dev_backend_reg(dev: Pointer): Pointer;
  ggml_backend_reg_get_proc_address(reg: Pointer, name: string): Pointer | null;
  ggml_backend_alloc_ctx_tensors(ctx: Pointer, backend: Pointer): Pointer | null;
  ggml_backend_buffer_free(buf: Pointer): void;
  ggml_backend_tensor_set(t: T, data: ArrayBufferView, offset: number, size: number): void;
  ggml_backend_tensor_get(t: T, data: Buffer | ArrayBufferView, offset: number, size: number): void;
  ggml_backend_tensor_memset(t: T, value: number, offset: number, size: number): void;
  ggml_backend_sched_new(backends: Pointer[], bufts: null, n: number, graphSize: number, parallel: boolean, opOffload: boolean): Pointer;
  ggml_backend_sched_free(sched: Pointer): void;
  ggml_backend_sched_reset(sched: Pointer): void;
  /** `enum ggml_status`: 0 = success. */
  ggml_backend_sched_graph_compute(sched: Pointer, graph: Pointer): number;
}

/** Declare the ggml functions on ggml-base (`ggmlBase`) and ggml (`ggml`: the device registry) of one build. */
export function declareGgml(ggmlBase: LibraryHandle, ggml: LibraryHandle): GgmlApi {
  const vp = 'void *';
  const b = (name: string, ret: unknown, args: unknown[]) => ggmlBase.func(name, ret as never, args as never);
  const g = (name: string, ret: unknown, args: unknown[]) => ggml.func(name, ret as never, args as never);
  const api = {
    ggml_init: b('ggml_init', vp, [ggml_init_params]),
    ggml_free: b('ggml_free', 'void', [vp]),
    ggml_tensor_overhead: b('ggml_tensor_overhead', 'size_t', []),
    ggml_graph_overhead_custom: b('ggml_graph_overhead_custom', 'size_t', ['size_t', 'bool']),
    ggml_new_tensor_1d: b('ggml_new_tensor_1d', vp, [vp, 'int', 'int64_t']),
    ggml_new_tensor_2d: b('ggml_new_tensor_2d', vp, [vp, 'int', 'int64_t', 'int64_t']),
    ggml_set_param: b('ggml_set_param', 'void', [vp]),
    ggml_set_input: b('ggml_set_input', 'void', [vp]),
    ggml_set_output: b('ggml_set_output', 'void', [vp]),
    ggml_set_name: b('ggml_set_name', vp, [vp, 'str']),
    ggml_get_name: b('ggml_get_name', 'str', [vp]),
    ggml_nbytes: b('ggml_nbytes', 'size_t', [vp]),
    ggml_nelements: b('ggml_nelements', 'int64_t', [vp]),
    ggml_get_rows: b('ggml_get_rows', vp, [vp, vp, vp]),
    ggml_rms_norm: b('ggml_rms_norm', vp, [vp, vp, 'float']),
    ggml_mul: b('ggml_mul', vp, [vp, vp, vp]),
    ggml_add: b('ggml_add', vp, [vp, vp, vp]),
    ggml_mul_mat: b('ggml_mul_mat', vp, [vp, vp, vp]),
    ggml_reshape_2d: b('ggml_reshape_2d', vp, [vp, vp, 'int64_t', 'int64_t']),
    ggml_reshape_4d: b('ggml_reshape_4d', vp, [vp, vp, 'int64_t', 'int64_t', 'int64_t', 'int64_t']),
    ggml_permute: b('ggml_permute', vp, [vp, vp, 'int', 'int', 'int', 'int']),
    ggml_cont: b('ggml_cont', vp, [vp, vp]),
    ggml_rope_ext: b('ggml_rope_ext', vp, [vp, vp, vp, vp, 'int', 'int', 'int', 'float', 'float', 'float', 'float', 'float', 'float']),
    ggml_diag_mask_inf: b('ggml_diag_mask_inf', vp, [vp, vp, 'int']),
    ggml_soft_max_ext: b('ggml_soft_max_ext', vp, [vp, vp, vp, 'float', 'float']),
    ggml_silu: b('ggml_silu', vp, [vp, vp]),
    ggml_new_graph_custom: b('ggml_new_graph_custom', vp, [vp, 'size_t', 'bool']),
    ggml_build_forward_expand: b('ggml_build_forward_expand', 'void', [vp, vp]),
    ggml_backend_load_all_from_path: g('ggml_backend_load_all_from_path', 'void', ['str']),
    ggml_backend_dev_count: g('ggml_backend_dev_count', 'size_t', []),
    ggml_backend_dev_get: g('ggml_backend_dev_get', vp, ['size_t']),
    ggml_backend_dev_name: b('ggml_backend_dev_name', 'str', [vp]),
    ggml_backend_dev_description: b('ggml_backend_dev_description', 'str', [vp]),
    ggml_backend_dev_type: b('ggml_backend_dev_type', 'int', [vp]),
    ggml_backend_init_by_type: g('ggml_backend_init_by_type', vp, ['int', 'str']),
    ggml_backend_free: b('ggml_backend_free', 'void', [vp]),
    ggml_backend_get_device: b('ggml_backend_get_device', vp, [vp]),
    ggml_backend_dev_backend_reg: b('ggml_backend_dev_backend_reg', vp, [vp]),
    ggml_backend_reg_get_proc_address: b('ggml_backend_reg_get_proc_address', vp, [vp, 'str']),
    ggml_backend_alloc_ctx_tensors: b('ggml_backend_alloc_ctx_tensors', vp, [vp, vp]),
    ggml_backend_buffer_free: b('ggml_backend_buffer_free', 'void', [vp]),
    ggml_backend_tensor_set: b('ggml_backend_tensor_set', 'void', [vp, vp, 'size_t', 'size_t']),
    ggml_backend_tensor_get: b('ggml_backend_tensor_get', 'void', [vp, vp, 'size_t', 'size_t']),
    ggml_backend_tensor_memset: b('ggml_backend_tensor_memset', 'void', [vp, 'uint8_t', 'size_t', 'size_t']),
    ggml_backend_sched_new: b('ggml_backend_sched_new', vp, [koffi.pointer(vp), vp, 'int', 'size_t', 'bool', 'bool']),
    ggml_backend_sched_free: b('ggml_backend_sched_free', 'void', [vp]),
    ggml_backend_sched_reset: b('ggml_backend_sched_reset', 'void', [vp]),
    ggml_backend_sched_graph_compute: b('ggml_backend_sched_graph_compute', 'int', [vp, vp]),
  };
  return api as unknown as GgmlApi;
}
