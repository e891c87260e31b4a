/**
 * The first K blocks of a GGUF decoder (and optionally its head) as a ggml graph run forward on the CPU backend,
 * with only the weights those parts need in memory: the hidden state after block K-1 of every position of a token
 * row (llama.cpp's `l_out-(K-1)`), the logits of a head applied to any hidden states, or both in one graph.
 */
import { loadLlama, type LoadLlamaOptions } from '../native/library.js';
import { GgmlType } from '../native/ggml.js';
import type { Pointer } from '../native/pointer.js';
import { InvalidInputError } from '../util/errors.js';
import { CpuBackend } from './backend.js';
import { GraphBuilder } from './builder.js';
import { ForwardGraph } from './compute.js';
import { buildDecoderLayers, buildHead, modelHead } from './decoder.js';
import { decoderTensors, readDecoderShape, checkLayerCount, type DecoderShape } from './decoder-shape.js';
import { TensorStore } from './tensors.js';

export interface DecoderForwardOptions {
  /** Blocks to run, K in [0, nLayer] (default all). */
  layers?: number;
  /** Load the model's head (output norm and matrix) too. Default true. */
  head?: boolean;
  /** CPU threads. Default 1. */
  threads?: number;
  llama?: LoadLlamaOptions;
}

export class DecoderForward {
  readonly shape: DecoderShape;
  readonly layers: number;
  readonly hasHead: boolean;
  private readonly backend: CpuBackend;
  private readonly weights: TensorStore;

  constructor(
    readonly path: string,
    opts: DecoderForwardOptions = {},
  ) {
    this.shape = readDecoderShape(path);
    this.layers = opts.layers ?? this.shape.nLayer;
    checkLayerCount(this.shape, this.layers);
    this.hasHead = opts.head ?? true;
    const llama = loadLlama(opts.llama);
    this.backend = new CpuBackend(llama, opts.threads ?? 1);
    try {
      const specs = decoderTensors(this.shape, { layers: this.layers, head: this.hasHead });
      this.weights = new TensorStore(this.backend, specs);
      this.weights.loadGguf(path, specs.map((s) => s.name));
    } catch (e) {
      this.backend.dispose();
      throw e;
    }
  }

  /** The hidden state after block K-1 for each position of `tokens` (from position 0): n rows of nEmbd. */
  hidden(tokens: ArrayLike<number>): Float32Array {
    return this.run(tokens, false)[0]!;
  }

  /** The logits of the model's head on the hidden state after block K-1 (the model's logits when K = nLayer). */
  logits(tokens: ArrayLike<number>): Float32Array {
    return this.run(tokens, true)[1]!;
  }

  /** The model's head (final RMSNorm, output matrix) on rows of nEmbd hidden values: rows of nVocab logits. */
  head(hidden: Float32Array): Float32Array {
    this.needHead();
    const e = this.shape.nEmbd;
    if (hidden.length === 0 || hidden.length % e !== 0) throw new InvalidInputError(`hidden states must be whole rows of ${e} values (got ${hidden.length})`);
    const n = hidden.length / e;
    return this.compute([{ name: 'hidden', dims: [e, n] }], (inputs) => inputs.write('hidden', hidden), (b, inputs) => [
      buildHead(b, this.shape, inputs.get('hidden'), modelHead(this.shape, (w) => this.weights.get(w))),
    ])[0]!;
  }

  private run(tokens: ArrayLike<number>, withHead: boolean): Float32Array[] {
    if (withHead) this.needHead();
    const n = tokens.length;
    if (n < 1 || n > this.shape.contextLength) throw new InvalidInputError(`a row must have 1 to ${this.shape.contextLength} tokens (got ${n})`);
    const ids = Int32Array.from(tokens);
    for (let i = 0; i < n; i++) {
      if (!(ids[i]! >= 0 && ids[i]! < this.shape.nVocab && ids[i] === tokens[i])) throw new InvalidInputError(`token ${i} (${tokens[i]}) is not a token id of the model (vocabulary of ${this.shape.nVocab})`);
    }
    const w = (name: string) => this.weights.get(name);
    return this.compute(
      [
        { name: 'tokens', dims: [n], type: GgmlType.I32 },
        { name: 'positions', dims: [n], type: GgmlType.I32 },
      ],
      (inputs) => {
        inputs.write('tokens', ids);
        inputs.write('positions', Int32Array.from({ length: n }, (_, i) => i));
      },
      (b, inputs) => {
        const hidden = buildDecoderLayers(b, this.shape, w, { tokens: inputs.get('tokens'), positions: inputs.get('positions'), n }, this.layers);
        return withHead ? [hidden, buildHead(b, this.shape, hidden, modelHead(this.shape, w))] : [hidden];
      },
    );
  }

  /** One graph for one call: its inputs, built, computed, read, freed. */
  private compute(
    specs: ConstructorParameters<typeof TensorStore>[1],
    fill: (inputs: TensorStore) => void,
    build: (b: GraphBuilder, inputs: TensorStore) => Pointer[],
  ): Float32Array[] {
    const inputs = new TensorStore(this.backend, specs);
    const b = new GraphBuilder(this.backend.g);
    let graph: ForwardGraph | undefined;
    try {
      fill(inputs);
      graph = new ForwardGraph(b, this.backend, build(b, inputs));
      graph.compute();
      return graph.outputs.map((_, i) => graph!.read(i));
    } finally {
      graph?.release();
      b.dispose();
      inputs.dispose();
    }
  }

  private needHead(): void {
    if (!this.hasHead) throw new InvalidInputError('this forward pass was opened without the head ({ head: false })');
  }

  dispose(): void {
    this.weights.dispose();
    this.backend.dispose();
  }
}
