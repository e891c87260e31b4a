/**
 * Run a built graph forward on a backend (no gradients, no optimizer): the scheduler allocates the intermediate
 * tensors, computes, and the outputs can be read until the next run.
 */
import type { Pointer } from '../native/pointer.js';
import type { CpuBackend } from './backend.js';
import { GRAPH_SIZE } from './backend.js';
import type { GraphBuilder } from './builder.js';
import { FlushDenormals } from '../native/denormals.js';
import { GraphError } from './errors.js';

export class ForwardGraph {
  private readonly graph: Pointer;
  private readonly denormals = new FlushDenormals();

  /** The graph computing `outputs` (tensors of `builder`), which stay readable after `compute`. */
  constructor(
    private readonly builder: GraphBuilder,
    private readonly backend: CpuBackend,
    readonly outputs: readonly Pointer[],
  ) {
    const g = builder.g;
    this.graph = g.ggml_new_graph_custom(builder.ctx, GRAPH_SIZE, false);
    for (const t of outputs) {
      g.ggml_set_output(t);
      g.ggml_build_forward_expand(this.graph, t);
    }
  }

  compute(): void {
    const g = this.builder.g;
    const sched = this.backend.sched;
    g.ggml_backend_sched_reset(sched);
    const status = this.denormals.run(() => g.ggml_backend_sched_graph_compute(sched, this.graph));
    if (status !== 0) throw new GraphError(`ggml could not compute the graph (ggml_status ${status})`);
  }

  /** The values of output `i` after `compute`, as float32 (ggml order). */
  read(i: number): Float32Array {
    const g = this.builder.g;
    const t = this.outputs[i];
    if (t === undefined) throw new GraphError(`internal: no output ${i}`);
    const out = new Float32Array(Number(g.ggml_nbytes(t)) / 4);
    g.ggml_backend_tensor_get(t, out, 0, out.byteLength);
    return out;
  }

  /** Let the scheduler forget this graph (call before its builder is disposed). */
  release(): void {
    this.builder.g.ggml_backend_sched_reset(this.backend.sched);
  }
}
