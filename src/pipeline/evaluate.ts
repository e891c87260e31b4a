/**
 * `lynx eval`: a method (or a sweep of its settings) on a benchmark, written as run folders under
 * `<out>/eval/<benchmark>/<method>/<setting>/` by the resumable runner.
 */
import { DecodingGenerator } from '../backends/decoding.js';
import type { Generator } from '../backends/generator.js';
import { LocalGenerator } from '../backends/local.js';
import { OpenAIGenerator, TapContext, type RemoteServer } from '../backends/openai/index.js';
import { LlamaContext, MAX_SEQUENCES, type LlamaModel } from '../engine/index.js';
import { evaluateMethod } from '../eval/evaluate-method.js';
import type { RunResult } from '../eval/runner.js';
import { methodEnv } from '../reasoning/method.js';
import type { ExitAccounting } from '../reasoning/forced-exit.js';
import { hasBaselines, writeLynxRunFiles } from '../eval/lynx-run-files.js';
import type { Grading } from '../tasks/answer-equiv.js';
import type { PromptStyle } from '../tasks/prompts.js';
import { benchmarkLabel, loadBenchmark, type BenchmarkSelection } from '../tasks/registry.js';
import { InvalidInputError } from '../util/errors.js';
import { connectBackend, remoteProgress, type BackendOptions, type RemoteProgress } from './backend.js';
import { COMPOSE_MODES, composeModeOf, contextNeeds, lynxRuleOf, methodsFor, type MethodSpec } from './methods.js';
import { openModel } from './model.js';
import { checkPromptLengths, type PromptLimitOptions } from './prompt-limits.js';
import type { SamplerOptions } from '../engine/index.js';
import { openDecoding, type DecodingSpec } from './decoding.js';

export interface EvaluateStepOptions extends BackendOptions, Pick<PromptLimitOptions, 'maxPromptTokens' | 'skipLongPrompts' | 'onSkip'> {
  /** A loaded model, or a GGUF file / Hugging Face folder to load (and dispose at the end). */
  model: LlamaModel | string;
  /** The small model of a big/small composition (methods split, random-switch, ..., small, big; `model` is the big one). */
  small?: LlamaModel | string;
  benchmark: string;
  selection?: BenchmarkSelection;
  /** Experiment folder. */
  out: string;
  spec: MethodSpec;
  shard?: { index: number; count: number };
  maxTokens: number;
  sampler: SamplerOptions;
  seed: number;
  grading: Grading;
  /** Problems decoded together. Default 4 locally, `maxInflight` with a remote backend. */
  concurrency?: number;
  /** Each problem in its own new context: exactly a lone run's result, no batching across problems. */
  freshContext?: boolean;
  exitCue: string;
  /** Where forced exits stop decoding: 'box' (default) or 'lynx' (LYNX's accounting: to EOS or the answer budget). */
  exitAccounting?: ExitAccounting;
  /** Budget forcing for every method (unset: each method's default; see MethodEnv.budgetForcing). */
  budgetForcing?: boolean;
  /** Rollouts per problem (LYNX's `--test-rollouts`); records `id#r` when more than one. Default 1. */
  testRollouts?: number;
  promptStyle?: PromptStyle;
  /** Called when a method (or sweep) starts, with its settings and the number of records it will write. */
  onMethod?: (name: string, settings: readonly string[], records: number) => void;
  /** After every record; `remote` while generating on a server. */
  onProgress?: (remote?: RemoteProgress) => void;
  /** Generate with speculative decoding (`draft`) or layer exit (`layerExit`); the method is unchanged. */
  decoding?: DecodingSpec;
  log?: (line: string) => void;
}

/** The δ of a LYNX run's setting (`delta=0.1`), or null. */
function settingDelta(setting: string): number | null {
  const m = /^delta=([\d.eE-]+)$/.exec(setting);
  const d = m ? Number(m[1]) : NaN;
  return Number.isFinite(d) ? d : null;
}

export async function evaluateStep(o: EvaluateStepOptions): Promise<RunResult[]> {
  const selected = loadBenchmark(o.benchmark, o.selection);
  if (selected.length === 0) throw new InvalidInputError(`no problems selected from ${o.benchmark}`);
  const methods = methodsFor(o.spec);
  const composed = composeModeOf(o.spec.method) !== undefined;
  if (composed && o.small === undefined) throw new InvalidInputError(`--method ${o.spec.method} composes two models: give the small one with --small SMALL (-m is the big one)`);
  if (!composed && o.small !== undefined) throw new InvalidInputError(`--small is for the big/small compositions (${COMPOSE_MODES.join(', ')}); --method ${o.spec.method} runs one model`);
  const model = typeof o.model === 'string' ? await openModel(o.model) : o.model;
  let problems: typeof selected;
  try {
    problems = checkPromptLengths(model, selected, { maxPromptTokens: o.maxPromptTokens, skipLongPrompts: o.skipLongPrompts, onSkip: o.onSkip, promptStyle: o.promptStyle });
  } catch (e) {
    if (typeof o.model === 'string') model.dispose();
    throw e;
  }
  const small = o.small === undefined ? undefined : typeof o.small === 'string' ? await openModel(o.small) : o.small;
  const disposeModels = () => {
    if (typeof o.model === 'string') model.dispose();
    if (small && typeof o.small === 'string') small.dispose();
  };
  const contextFor = (m: LlamaModel, n: number, role: 'big' | 'small') =>
    new LlamaContext(m, {
      ...contextNeeds(o.spec.method, n, o.maxTokens, { model: role, handBackEvery: o.spec.handBackEvery, candidates: o.spec.candidates }),
      // Batch-invariant numerics (see ContextOptions.kvType): a problem's trace depends only slightly on which other
      // problems decode beside it (their cells in the shared KV cache); freshContext removes even that.
      kvType: 'f32',
      flashAttention: false,
    });
  const results: RunResult[] = [];
  let server: RemoteServer | undefined;
  let decoding: Awaited<ReturnType<typeof openDecoding>> | undefined;
  let generatorFor: (problems: number) => { generator: Generator; small?: Generator; dispose(): void };
  try {
    server = await connectBackend(o, model);
    if (server && (small || o.decoding)) {
      throw new InvalidInputError('--small, --draft and --layer-exit decode locally: they do not combine with --backend openai');
    }
    const remote = server;
    // Hidden states of a remote trace are read by a local prefill: a local context only for the methods that tap.
    const taps = remote !== undefined && methods.some((m) => m.requires?.includes('hiddenStates'));
    const atOnce = o.freshContext ? 1 : (o.concurrency ?? 4);
    decoding = o.decoding
      ? await openDecoding(model, o.decoding, { parallel: contextNeeds(o.spec.method, atOnce, o.maxTokens).nSeqMax, contextTokens: o.maxTokens + 1024, log: o.log })
      : undefined;
    const mode = decoding?.mode;
    generatorFor = (n) => {
      if (remote) {
        if (!taps) return { generator: new OpenAIGenerator(remote, model), dispose: () => {} };
        const c = new LlamaContext(model, { nCtx: n * (o.maxTokens + 1024), nSeqMax: Math.min(MAX_SEQUENCES, 2 * n), kvType: 'f32', flashAttention: false });
        const t = new TapContext(c);
        return { generator: new OpenAIGenerator(remote, model, t), dispose: () => t.dispose() };
      }
      const c = contextFor(model, n, 'big');
      const s = small ? contextFor(small, n, 'small') : undefined;
      return {
        generator: mode ? new DecodingGenerator(new LocalGenerator(c), mode) : new LocalGenerator(c),
        ...(s ? { small: new LocalGenerator(s) } : {}),
        dispose: () => {
          c.dispose();
          s?.dispose();
        },
      };
    };
  } catch (e) {
    decoding?.dispose();
    disposeModels();
    throw e;
  }
  const concurrency = o.concurrency ?? server?.limit.max ?? 4;
  const main = generatorFor(o.freshContext ? 1 : concurrency);
  const env = methodEnv({
    generator: main.generator,
    sampler: o.sampler,
    maxTokens: o.maxTokens,
    exitCue: o.exitCue,
    exitAccounting: o.exitAccounting,
    budgetForcing: o.budgetForcing,
    seed: o.seed,
    ...(main.small ? { small: main.small } : {}),
  });
  try {
    for (const method of methods) {
      const settings = 'settings' in method ? method.settings : [method.setting];
      o.onMethod?.(method.name, settings, problems.length * settings.length);
      results.push(
        ...(await evaluateMethod({
          problems,
          rollouts: o.testRollouts,
          benchmark: benchmarkLabel(o.benchmark),
          root: o.out,
          method,
          env,
          grading: o.grading,
          promptStyle: o.promptStyle,
          shard: o.shard,
          concurrency,
          freshGenerator: o.freshContext ? () => generatorFor(1) : undefined,
          config: {
            method: o.spec.method,
            rule: o.spec.rule ?? 'lynx',
            probe: o.spec.probe,
            freshContext: o.freshContext === true,
            exitAccounting: o.exitAccounting ?? 'box',
            budgetForcing: o.budgetForcing ?? 'method default',
            testRollouts: o.testRollouts ?? 1,
            ...(decoding ? { decoding: decoding.mode.name, lossless: decoding.mode.lossless } : {}),
            ...(server ? { generator: server.describe() } : {}),
          },
          onProgress: o.onProgress && (() => o.onProgress!(server ? remoteProgress(server) : undefined)),
        })),
      );
    }
    if (o.spec.method === 'lynx') {
      // LYNX's own files, where the records know their full rollout (a δ sweep).
      for (const r of results) {
        const delta = settingDelta(r.metrics.setting);
        if (delta === null || !hasBaselines(r.predictions)) continue;
        writeLynxRunFiles(r.dir, r.predictions, lynxRuleOf(o.spec, delta), {
          description: { dataset_id: benchmarkLabel(o.benchmark), test_problems: problems.length, test_rollouts: o.testRollouts ?? 1, probe_path: o.spec.probe },
          seed: o.seed,
        });
      }
    }
  } finally {
    main.dispose();
    decoding?.dispose();
    disposeModels();
  }
  return results;
}
