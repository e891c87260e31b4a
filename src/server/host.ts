/**
 * The model behind `lynx serve`: loaded once (the server answers /health with 503 until it is), one context whose
 * sequences every request shares (the engine batches their decode steps: continuous batching), LYNX policies loaded
 * on first use per rule and δ, and the admission queue.
 */
import { basename } from 'node:path';
import { existsSync } from 'node:fs';
import type { Generator } from '../backends/generator.js';
import { LocalGenerator } from '../backends/local.js';
import { OpenAIGenerator, TapContext, type RemoteServer } from '../backends/openai/index.js';
import { connectBackend, type BackendOptions } from '../pipeline/backend.js';
import { draftModelPredictor, LlamaContext, LlamaModel, speculativeDecoding, type DecodingMode } from '../engine/index.js';
import { OpenHeads, layerExitMode, selfSpeculativeMode } from '../reasoning/heads/exit.js';
import { checkSameVocabulary } from '../engine/index.js';
import type { Draft } from './schemas.js';
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
   * KV cache precision. 'f16' (default, flash attention where it helps) is the fast one; 'f32' with flash attention
   * off keeps a request's tokens independent of what decodes beside it (to ~1e-6), so a seeded request equals
   * `lynx run` for that seed token for token, at about half the decode speed on a CPU.
   */
  kvType?: 'f32' | 'f16';
  /** Early-exit heads folder for per-request self-speculative decoding and layer exit (`draft: {type: 'heads'}`). */
  heads?: string;
  /** Self-drafting from the N tokens the model emits most (a cheaper head; layer-exit requests are then refused). */
  draftVocab?: number;
  /** A draft GGUF for per-request speculative decoding (`draft: {type: 'model'}`). */
  draftModel?: string;
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
  private heads: OpenHeads | undefined;
  private draft: { model: LlamaModel; context: LlamaContext } | undefined;
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
        kvType: this.options.kvType ?? 'f16',
        flashAttention: (this.options.kvType ?? 'f16') === 'f16' ? 'auto' : false,
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
      if (this.options.heads) {
        if (!existsSync(this.options.heads)) throw new LynxError(`no early-exit heads at ${this.options.heads}`);
        this.heads = OpenHeads.open(this.options.heads, model.info.path, { threads: this.options.threads, draftVocab: this.options.draftVocab });
      }
      if (this.options.draftModel) {
        const draft = await LlamaModel.loadAsync(this.options.draftModel);
        checkSameVocabulary(model, draft);
        const slots = this.options.parallel * SEQUENCES_PER_REQUEST;
        this.draft = { model: draft, context: new LlamaContext(draft, { nCtx: slots * this.options.contextPerRequest, nSeqMax: slots, threads: this.options.threads, kvType: 'f32', flashAttention: false }) };
      }
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

  /** A decoding mode for one request's `draft` (a 400 naming what the server lacks). */
  decoding(d: Exclude<Draft, { type: 'none' }>): DecodingMode {
    const { model } = this.ready;
    // Speculative decoding and layer exit run in the local engine; a remote server decodes its own way.
    if (this.remote) throw badRequest('draft: this server generates on a remote backend, where draft decoding is not available', 'draft.type');
    try {
      if (d.type === 'model') {
        if (!this.draft) throw badRequest('draft: this server has no draft model (start it with --draft-model PATH)', 'draft.type');
        return speculativeDecoding({ predictor: draftModelPredictor({ context: this.draft.context }), draftMax: d.draft_max, rule: d.rule, name: `speculative(model, draft-max ${d.draft_max})` });
      }
      if (!this.heads) throw badRequest('draft: this server has no early-exit heads (start it with --heads DIR)', 'draft.type');
      if (d.type === 'layer_exit' && this.heads.tokens) throw badRequest('draft: this server drafts from a draft vocabulary (--draft-vocab), and layer exit needs heads over the whole vocabulary', 'draft.type');
      if (d.type === 'layer_exit') return layerExitMode(this.heads, { level: d.accuracy_level });
      return selfSpeculativeMode(this.heads, { layer: d.layer ?? 'auto', level: d.accuracy_level, draftMax: d.draft_max, rule: d.rule, nParams: model.info.nParams });
    } catch (e) {
      if (e instanceof LynxError) throw badRequest(`draft: ${e.message}`, 'draft');
      throw e;
    }
  }

  dispose(): void {
    this.heads?.dispose();
    this.heads = undefined;
    this.draft?.model.dispose();
    this.draft = undefined;
    this.loaded?.context.dispose();
    this.loaded?.model.dispose();
    this.loaded = undefined;
  }
}
