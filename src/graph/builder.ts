/**
 * A ggml context that holds the metadata of one graph's intermediate tensors (no data: the scheduler or ggml-opt
 * allocates it when the graph runs). The weights and inputs the graph reads live in a TensorStore.
 */
import type { GgmlApi } from '../native/ggml.js';
import type { Pointer } from '../native/pointer.js';
import { GRAPH_SIZE } from './backend.js';
import { GraphError } from './errors.js';

export class GraphBuilder {
  private ctxPtr: Pointer | null;

  /** Room for `nodes` tensors and one graph of that size; `memBytes` overrides the computed size. */
  constructor(
    readonly g: GgmlApi,
    opts: { nodes?: number; memBytes?: number } = {},
  ) {
    const nodes = opts.nodes ?? GRAPH_SIZE;
    const mem = opts.memBytes ?? nodes * g.ggml_tensor_overhead() + g.ggml_graph_overhead_custom(nodes, false);
    this.ctxPtr = g.ggml_init({ mem_size: mem, mem_buffer: null, no_alloc: true });
    if (!this.ctxPtr) throw new GraphError('ggml could not create a graph context');
  }

  get ctx(): Pointer {
    if (!this.ctxPtr) throw new GraphError('this graph was disposed');
    return this.ctxPtr;
  }

  dispose(): void {
    if (this.ctxPtr) this.g.ggml_free(this.ctxPtr);
    this.ctxPtr = null;
  }
}
