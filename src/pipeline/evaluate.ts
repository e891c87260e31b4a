/**
 * `lynx eval`: a method (or a sweep of its settings) on a benchmark, written as run folders under
 * `<out>/eval/<benchmark>/<method>/<setting>/` by the resumable runner.
 */
import { LocalGenerator } from '../backends/local.js';
import { LlamaContext, type LlamaModel } from '../engine/index.js';
import { evaluateMethod } from '../eval/evaluate-method.js';
import type { RunResult } from '../eval/runner.js';
import { methodEnv } from '../reasoning/method.js';
import type { ExitAccounting } from '../reasoning/forced-exit.js';
import { hasBaselines, writeLynxRunFiles } from '../eval/lynx-run-files.js';
import type { Grading } from '../tasks/answer-equiv.js';
import type { PromptStyle } from '../tasks/prompts.js';
import { benchmarkLabel, loadBenchmark, type BenchmarkSelection } from '../tasks/registry.js';
import { InvalidInputError } from '../util/errors.js';
import { contextNeeds, lynxRuleOf, methodsFor, type MethodSpec } from './methods.js';
import { openModel } from './model.js';
import { checkPromptLengths, type PromptLimitOptions } from './prompt-limits.js';
import type { SamplerOptions } from '../engine/index.js';

export interface EvaluateStepOptions extends Pick<PromptLimitOptions, 'maxPromptTokens' | 'skipLongPrompts' | 'onSkip'> {
  /** A loaded model, or a GGUF file / Hugging Face folder to load (and dispose at the end). */
  model: LlamaModel | string;
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
  /** Problems decoded together. */
  concurrency: number;
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
  onProgress?: () => void;
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
  const model = typeof o.model === 'string' ? await openModel(o.model) : o.model;
  let problems: typeof selected;
  try {
    problems = checkPromptLengths(model, selected, { maxPromptTokens: o.maxPromptTokens, skipLongPrompts: o.skipLongPrompts, onSkip: o.onSkip, promptStyle: o.promptStyle });
  } catch (e) {
    if (typeof o.model === 'string') model.dispose();
    throw e;
  }
  const contextFor = (n: number) =>
    new LlamaContext(model, {
      ...contextNeeds(o.spec.method, n, o.maxTokens),
      // Batch-invariant numerics (see ContextOptions.kvType): a problem's trace depends only slightly on which other
      // problems decode beside it (their cells in the shared KV cache); freshContext removes even that.
      kvType: 'f32',
      flashAttention: false,
    });
  const context = contextFor(o.freshContext ? 1 : o.concurrency);
  const env = methodEnv({
    context,
    sampler: o.sampler,
    maxTokens: o.maxTokens,
    exitCue: o.exitCue,
    exitAccounting: o.exitAccounting,
    budgetForcing: o.budgetForcing,
    seed: o.seed,
  });
  const results: RunResult[] = [];
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
          concurrency: o.concurrency,
          freshGenerator: o.freshContext
            ? () => {
                const c = contextFor(1);
                return { generator: new LocalGenerator(c), dispose: () => c.dispose() };
              }
            : undefined,
          config: {
            method: o.spec.method,
            rule: o.spec.rule ?? 'lynx',
            probe: o.spec.probe,
            freshContext: o.freshContext === true,
            exitAccounting: o.exitAccounting ?? 'box',
            budgetForcing: o.budgetForcing ?? 'method default',
            testRollouts: o.testRollouts ?? 1,
          },
          onProgress: o.onProgress,
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
    context.dispose();
    if (typeof o.model === 'string') model.dispose();
  }
  return results;
}
