/**
 * The model behind `lynx serve`: loaded once (the server answers /health with 503 until it is), one context whose
 * sequences every request shares (the engine batches their decode steps: continuous batching), LYNX policies loaded
 * on first use per rule and δ, and the admission queue.
 */
import { basename } from 'node:path';
import type { Generator } from '../backends/generator.js';
import { LocalGenerator } from '../backends/local.js';
import { OpenAIGenerator, TapContext, type RemoteServer } from '../backends/openai/index.js';
import { connectBackend, type BackendOptions } from '../pipeline/backend.js';
import { LlamaContext, LlamaModel } from '../engine/index.js';
import { calibratedRules, loadLynxPolicy, policyTaps, type PolicySelector } from '../reasoning/lynx/policy.js';
import type { LynxPolicy } from '../reasoning/lynx/online.js';
import { LynxError } from '../util/errors.js';
import { Admission } from './admission.js';
import { ApiError, badRequest } from './api-error.js';
import { ServerMetrics } from './metrics.js';

export interface HostOptions {
  /** GGUF file. */
  model: string;
  /** Experiment folder (probe/ and conformal/) for LYNX early exit; without it LYNX requests are refused. */
  probe?: string;
  /** The name `/v1/models` lists and requests may name (default: the file's base name). */
  servedName?: string;
  /** Requests decoded at once. */
  parallel: number;
  /** Requests that may wait for a slot beyond those. */
  queue: number;
  /** KV cells one request may use: prompt + max_tokens + the exit cue and answer. */
  contextPerRequest: number;
  threads?: number;
  /**
   * KV cache precision. 'f32' (default) with flash attention off keeps a request's tokens independent of what decodes
   * beside it (so a seeded request equals `lynx run`); 'f16' halves cache memory.
   */
  kvType?: 'f32' | 'f16';
  /**
   * Generate on an OpenAI-compatible server (`backend: 'openai'`): this host then keeps the model for the tokenizer,
   * the chat template and LYNX's hidden states (read by local prefills of the remote tokens), and the context for those.
   */
  backend?: BackendOptions;
}

/** Sequences one request may hold at once: its trace and the forks of its probes and trial answers. */
const SEQUENCES_PER_REQUEST = 3;

export class ModelHost {
  status: 'loading' | 'ready' | 'failed' = 'loading';
  failure: string | undefined;
  readonly admission: Admission;
  readonly metrics = new ServerMetrics();
  readonly servedName: string;
  private loaded: { model: LlamaModel; context: LlamaContext; generator: Generator } | undefined;
  /** The server generating for this host (`backend: 'openai'`). */
  remote: RemoteServer | undefined;
  private readonly policies = new Map<string, LynxPolicy>();
  /** The calibrated (rule, δ) pairs of the probe folder. */
  rules: PolicySelector[] = [];

  constructor(readonly options: HostOptions) {
    this.admission = new Admission(options.parallel, options.queue);
    this.servedName = options.servedName ?? basename(options.model).replace(/\.gguf$/i, '');
  }

  /** Load the model and create the shared context; a failure is kept (/health reports it) and rethrown. */
  async load(): Promise<void> {
    try {
      // On a worker thread: /health answers 503 while llama.cpp reads the file.
      const model = await LlamaModel.loadAsync(this.options.model);
      const context = new LlamaContext(model, {
        nCtx: this.options.parallel * this.options.contextPerRequest,
        nSeqMax: this.options.parallel * SEQUENCES_PER_REQUEST,
        threads: this.options.threads,
        // Batch-invariant numerics: a request's tokens do not depend on which others decode beside it (to ~1e-6), so
        // a seeded request gives what `lynx run` gives for the same seed.
        kvType: this.options.kvType ?? 'f32',
        flashAttention: this.options.kvType === 'f16' ? 'auto' : false,
      });
      try {
        this.remote = await connectBackend(this.options.backend ?? {}, model);
      } catch (e) {
        context.dispose();
        model.dispose();
        throw e;
      }
      const generator = this.remote ? new OpenAIGenerator(this.remote, model, new TapContext(context)) : new LocalGenerator(context);
      this.loaded = { model, context, generator };
      if (this.options.probe) {
        // Refuse a probe of another model at start, not at the first request.
        this.rules = calibratedRules(this.options.probe);
        policyTaps(this.policy(this.rules[0]!.rule, this.rules[0]!.delta), model, this.options.probe);
      }
      this.status = 'ready';
    } catch (e) {
      this.status = 'failed';
      this.failure = (e as Error).message;
      throw e;
    }
  }

  get ready(): { model: LlamaModel; context: LlamaContext; generator: Generator } {
    if (!this.loaded) {
      throw new ApiError(503, this.status === 'failed' ? `the model failed to load: ${this.failure}` : 'the model is still loading', 'service_unavailable', null, 'model_not_ready');
    }
    return this.loaded;
  }

  /** The LYNX policy of a rule and δ (a 400 naming the calibrated ones when there is none). */
  policy(rule: string, delta: number): LynxPolicy {
    if (!this.options.probe) throw badRequest('early_exit lynx needs a server started with --probe EXP (a probe and calibrated rules)', 'early_exit.method');
    const key = `${rule}@${delta}`;
    let p = this.policies.get(key);
    if (!p) {
      try {
        p = loadLynxPolicy(this.options.probe, { rule, delta });
      } catch (e) {
        if (e instanceof LynxError) throw badRequest(`early_exit: ${e.message}`, 'early_exit.delta');
        throw e;
      }
      this.policies.set(key, p);
    }
    return p;
  }

  dispose(): void {
    this.loaded?.context.dispose();
    this.loaded?.model.dispose();
    this.loaded = undefined;
  }
}
