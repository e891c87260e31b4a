/**
 * Early-exit heads run forward on ggml's CPU backend: each head is the model's final RMSNorm (its weight shared by
 * every head) and a hidden -> vocab matrix of its own, applied to rows of hidden states of its block. The matrices
 * live in one buffer, F32, F16 or Q8_0 (a head of a 1.5B model's shape is 233M values: Q8_0 reads a quarter of F32's
 * bytes per token), and the graph of a row count is built once and reused, so drafting one token costs one matrix
 * product and no graph construction.
 */
import { loadLlama, type LoadLlamaOptions } from '../native/library.js';
import { GgmlType } from '../native/ggml.js';
import type { Pointer } from '../native/pointer.js';
import { InvalidInputError } from '../util/errors.js';
import { CpuBackend } from './backend.js';
import { GraphBuilder } from './builder.js';
import { ForwardGraph } from './compute.js';
import { buildHead } from './decoder.js';
import { TensorStore } from './tensors.js';

export type HeadWeightType = 'f32' | 'f16' | 'q8_0';

export interface HeadForwardOptions {
  nEmbd: number;
  nVocab: number;
  rmsEps: number;
  /** The model's final RMSNorm weight (nEmbd). */
  norm: Float32Array;
  /** Per block, its head's matrix: nVocab rows of nEmbd (PyTorch's [out, in]; ggml dims [nEmbd, nVocab]). */
  matrices: ReadonlyMap<number, Float32Array>;
  /** How the matrices are held. Default 'f32'. */
  type?: HeadWeightType;
  /** CPU threads. Default 1. */
  threads?: number;
  llama?: LoadLlamaOptions;
}

const TYPE: Record<HeadWeightType, GgmlType.F32 | GgmlType.F16 | GgmlType.Q8_0> = { f32: GgmlType.F32, f16: GgmlType.F16, q8_0: GgmlType.Q8_0 };

interface BuiltGraph {
  rows: number;
  inputs: TensorStore;
  builder: GraphBuilder;
  graph: ForwardGraph;
}

export class HeadForward {
  readonly layers: number[];
  readonly nEmbd: number;
  readonly nVocab: number;
  private readonly rmsEps: number;
  private readonly backend: CpuBackend;
  private readonly weights: TensorStore;
  /** Built graphs by block and row count (one-row graphs for drafting, a batch size for calibration). */
  private readonly graphs = new Map<string, BuiltGraph>();

  constructor(o: HeadForwardOptions) {
    this.nEmbd = o.nEmbd;
    this.nVocab = o.nVocab;
    this.rmsEps = o.rmsEps;
    this.layers = [...o.matrices.keys()].sort((a, b) => a - b);
    if (o.norm.length !== o.nEmbd) throw new InvalidInputError(`the norm weight has ${o.norm.length} values; the model's hidden size is ${o.nEmbd}`);
    for (const [layer, m] of o.matrices) {
      if (m.length !== o.nEmbd * o.nVocab) throw new InvalidInputError(`head ${layer}: its matrix has ${m.length} values, expected ${o.nVocab} x ${o.nEmbd}`);
    }
    const type = TYPE[o.type ?? 'f32'];
    if (type === undefined) throw new InvalidInputError(`head weight type must be f32, f16 or q8_0 (got ${String(o.type)})`);
    this.backend = new CpuBackend(loadLlama(o.llama), o.threads ?? 1);
    try {
      this.weights = new TensorStore(this.backend, [
        { name: 'norm', dims: [o.nEmbd] },
        ...this.layers.map((l) => ({ name: `head.${l}`, dims: [o.nEmbd, o.nVocab], type })),
      ]);
      this.weights.write('norm', o.norm);
      for (const l of this.layers) this.weights.write(`head.${l}`, o.matrices.get(l)!);
    } catch (e) {
      this.backend.dispose();
      throw e;
    }
  }

  /** Logits of the head of `layer` on rows of hidden states (a multiple of nEmbd values): rows of nVocab. */
  logits(layer: number, hidden: Float32Array): Float32Array {
    if (!this.weights.has(`head.${layer}`)) throw new InvalidInputError(`there is no head on block ${layer} (heads: ${this.layers.join(', ')})`);
    const e = this.nEmbd;
    if (hidden.length === 0 || hidden.length % e !== 0) throw new InvalidInputError(`hidden states must be whole rows of ${e} values (got ${hidden.length})`);
    const g = this.graphFor(layer, hidden.length / e);
    g.inputs.write('hidden', hidden);
    g.graph.compute();
    return g.graph.read(0);
  }

  private graphFor(layer: number, rows: number): BuiltGraph {
    const key = `${layer}x${rows}`;
    const built = this.graphs.get(key);
    if (built) return built;
    // Keep one-row graphs (drafting) and the latest other size; a caller cycling through sizes rebuilds.
    for (const [k, b] of this.graphs) {
      if (b.rows !== 1 && rows !== 1) {
        this.release(b);
        this.graphs.delete(k);
      }
    }
    const inputs = new TensorStore(this.backend, [{ name: 'hidden', dims: [this.nEmbd, rows] }]);
    const builder = new GraphBuilder(this.backend.g);
    const logits: Pointer = buildHead(builder, { rmsEps: this.rmsEps }, inputs.get('hidden'), { norm: this.weights.get('norm'), matrix: this.weights.get(`head.${layer}`) });
    const b: BuiltGraph = { rows, inputs, builder, graph: new ForwardGraph(builder, this.backend, [logits]) };
    this.graphs.set(key, b);
    return b;
  }

  private release(b: BuiltGraph): void {
    b.graph.release();
    b.builder.dispose();
    b.inputs.dispose();
  }

  dispose(): void {
    for (const b of this.graphs.values()) this.release(b);
    this.graphs.clear();
    this.weights.dispose();
    this.backend.dispose();
  }
}
