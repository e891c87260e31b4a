/**
 * ggml's optimizer (ggml-opt: AdamW or SGD) over a static graph built here: whatever tensors were marked as
 * parameters (TensorStore.markParams) and are reached from `outputs` are updated to minimise the loss ggml-opt
 * derives from `outputs`: softmax cross-entropy against its `labels` tensor (one-hot targets, or any distribution,
 * which makes it KL distillation up to the teacher's entropy), or the mean or sum of `outputs` (a loss built by hand).
 *
 * One micro-batch per optimizer step (`opt_period = 1`): gradients are recomputed each step instead of accumulated.
 */
import koffi from 'koffi';
import type { Llama } from '../native/library.js';
import {
  GgmlOptBuildType,
  GgmlOptLossType,
  GgmlOptOptimizerType,
  ggml_opt_get_optimizer_params,
  type GgmlOptApi,
  type GgmlOptOptimizerParams,
} from '../native/ggml-opt.js';
import type { GgmlApi } from '../native/ggml.js';
import type { Pointer } from '../native/pointer.js';
import type { CpuBackend } from './backend.js';
import type { GraphBuilder } from './builder.js';
import { FlushDenormals } from '../native/denormals.js';
import { GraphError } from './errors.js';

export type GraphLoss = 'cross-entropy' | 'mean' | 'sum';
export type OptimizerName = 'adamw' | 'sgd';

export interface OptimizerStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export interface GraphOptimizerSpec {
  backend: CpuBackend;
  /** The builder holding the graph; ggml-opt adds its backward and optimizer graphs to the same context. */
  builder: GraphBuilder;
  /** The tensor ggml-opt treats as the graph's input (filled by the caller before each evaluation). */
  inputs: Pointer;
  outputs: Pointer;
  loss: GraphLoss;
  optimizer?: OptimizerName;
}

/** Loss and accuracy of one evaluation (accuracy: argmax of outputs = argmax of labels; cross-entropy only). */
export interface GraphEvaluation {
  loss: number;
  accuracy: number;
}

const LOSS: Record<GraphLoss, GgmlOptLossType> = {
  'cross-entropy': GgmlOptLossType.CROSS_ENTROPY,
  mean: GgmlOptLossType.MEAN,
  sum: GgmlOptLossType.SUM,
};

export class GraphOptimizer {
  private readonly o: GgmlOptApi;
  private readonly g: GgmlApi;
  private opt: Pointer | null = null;
  private result: Pointer | null = null;
  private callback: unknown = null;
  private optPars: GgmlOptOptimizerParams = { adamw: { alpha: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, wd: 0 }, sgd: { alpha: 1e-3, wd: 0 } };
  private readonly f64 = new Float64Array(1);
  private readonly denormals = new FlushDenormals();
  /** ggml-opt's labels tensor, shaped like `outputs` (cross-entropy only). */
  private labels: Pointer | null = null;

  /** Build the forward, backward and optimizer graphs (the optimizer type is fixed: ggml allocates its state here). */
  constructor(llama: Llama, spec: GraphOptimizerSpec) {
    const o = (this.o = llama.ggmlOpt);
    this.g = llama.ggml;
    try {
      this.callback = koffi.register((() => this.optPars) as never, koffi.pointer(ggml_opt_get_optimizer_params));
      const params = o.ggml_opt_default_params(spec.backend.sched, LOSS[spec.loss]).p;
      Object.assign(params, {
        ctx_compute: spec.builder.ctx,
        inputs: spec.inputs,
        outputs: spec.outputs,
        build_type: GgmlOptBuildType.OPT,
        opt_period: 1,
        get_opt_pars: this.callback,
        get_opt_pars_ud: null,
        optimizer: (spec.optimizer ?? 'adamw') === 'adamw' ? GgmlOptOptimizerType.ADAMW : GgmlOptOptimizerType.SGD,
      });
      this.opt = o.ggml_opt_init(params);
      if (spec.loss === 'cross-entropy') this.labels = o.ggml_opt_labels(this.opt);
      this.result = o.ggml_opt_result_init();
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /**
   * Write the labels of the next evaluation (cross-entropy only), shaped like `outputs`: per row a one-hot target or
   * a distribution (a teacher's probabilities). Call from the `fill` callback of `step` / `evaluate`.
   */
  setLabels(data: Float32Array): void {
    if (!this.labels) throw new GraphError('this optimizer has no labels (its loss is not cross-entropy)');
    const nbytes = Number(this.g.ggml_nbytes(this.labels));
    if (data.byteLength !== nbytes) throw new GraphError(`internal: labels take ${nbytes / 4} values (got ${data.length})`);
    this.g.ggml_backend_tensor_set(this.labels, data, 0, data.byteLength);
  }

  /** Whether steps run with denormals flushed to zero (Linux x86-64; see src/native/denormals.ts). */
  get flushesDenormals(): boolean {
    return this.denormals.active;
  }

  /** One optimizer step: `fill` writes the inputs and labels, then forward, backward and update run. */
  step(hyper: OptimizerStep, fill: () => void): GraphEvaluation {
    this.optPars = {
      adamw: { alpha: hyper.lr, beta1: hyper.beta1, beta2: hyper.beta2, eps: hyper.eps, wd: hyper.weightDecay },
      sgd: { alpha: hyper.lr, wd: hyper.weightDecay },
    };
    return this.run(true, fill);
  }

  /** The forward pass only (loss and accuracy, no update). */
  evaluate(fill: () => void): GraphEvaluation {
    return this.run(false, fill);
  }

  private run(backward: boolean, fill: () => void): GraphEvaluation {
    if (!this.opt || !this.result) throw new GraphError('this optimizer was disposed');
    const o = this.o;
    o.ggml_opt_result_reset(this.result);
    o.ggml_opt_alloc(this.opt, backward);
    fill();
    this.denormals.run(() => o.ggml_opt_eval(this.opt!, this.result!));
    o.ggml_opt_result_loss(this.result, this.f64, null);
    const loss = this.f64[0]!;
    o.ggml_opt_result_accuracy(this.result, this.f64, null);
    return { loss, accuracy: this.f64[0]! };
  }

  dispose(): void {
    if (this.result) this.o.ggml_opt_result_free(this.result);
    if (this.opt) this.o.ggml_opt_free(this.opt);
    if (this.callback) koffi.unregister(this.callback as never);
    this.result = this.opt = this.callback = null;
  }
}
