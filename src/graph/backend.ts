/**
 * ggml's CPU backend with a thread count, and the scheduler that allocates and runs graphs on it. One per graph
 * owner (a trainer, a forward pass): a scheduler runs one graph at a time.
 */
import koffi from 'koffi';
import type { Llama } from '../native/library.js';
import { GGML_BACKEND_DEVICE_TYPE_CPU, GGML_DEFAULT_GRAPH_SIZE, ggml_backend_set_n_threads_t, type GgmlApi } from '../native/ggml.js';
import type { Pointer } from '../native/pointer.js';
import { InvalidInputError } from '../util/errors.js';
import { GraphError } from './errors.js';

/** Nodes a scheduler (and a graph built here) can hold: a forward, backward and optimizer graph of a few dozen layers. */
export const GRAPH_SIZE = GGML_DEFAULT_GRAPH_SIZE * 4;

export class CpuBackend {
  readonly g: GgmlApi;
  private backendPtr: Pointer | null = null;
  private schedPtr: Pointer | null = null;

  constructor(
    llama: Llama,
    readonly threads: number,
  ) {
    if (!Number.isInteger(threads) || threads < 1) throw new InvalidInputError(`threads must be a positive integer (got ${threads})`);
    const g = (this.g = llama.ggml);
    this.backendPtr = g.ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, null);
    if (!this.backendPtr) throw new GraphError('ggml could not create a CPU backend');
    try {
      const reg = g.ggml_backend_dev_backend_reg(g.ggml_backend_get_device(this.backendPtr));
      const setThreads = g.ggml_backend_reg_get_proc_address(reg, 'ggml_backend_set_n_threads');
      if (!setThreads) throw new GraphError('the CPU backend does not export ggml_backend_set_n_threads');
      koffi.call(setThreads, ggml_backend_set_n_threads_t, this.backendPtr, threads);
      this.schedPtr = g.ggml_backend_sched_new([this.backendPtr], null, 1, GRAPH_SIZE, false, false);
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  get backend(): Pointer {
    if (!this.backendPtr) throw new GraphError('this backend was disposed');
    return this.backendPtr;
  }

  get sched(): Pointer {
    if (!this.schedPtr) throw new GraphError('this backend was disposed');
    return this.schedPtr;
  }

  dispose(): void {
    if (this.schedPtr) this.g.ggml_backend_sched_free(this.schedPtr);
    if (this.backendPtr) this.g.ggml_backend_free(this.backendPtr);
    this.schedPtr = this.backendPtr = null;
  }
}
