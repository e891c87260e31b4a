/**
 * `lynx eval`: a method (or a sweep of its settings) on a benchmark, written as run folders under
 * `<out>/eval/<benchmark>/<method>/<setting>/` by the resumable runner.
 */
import { LocalGenerator } from '../backends/local.js';
import { LlamaContext, type LlamaModel } from '../engine/index.js';
import { evaluateMethod } from '../eval/evaluate-method.js';
import type { RunResult } from '../eval/runner.js';
import { methodEnv } from '../reasoning/method.js';
import type { Grading } from '../tasks/answer-equiv.js';
import type { PromptStyle } from '../tasks/prompts.js';
import { benchmarkLabel, loadBenchmark, type BenchmarkSelection } from '../tasks/registry.js';
import { InvalidInputError } from '../util/errors.js';
import { COMPOSE_MODES, composeModeOf, contextNeeds, methodsFor, type MethodSpec } from './methods.js';
import { openModel } from './model.js';

export interface EvaluateStepOptions {
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
  sampler: { temperature: number; topP: number };
  seed: number;
  grading: Grading;
  /** Problems decoded together. */
  concurrency: number;
  /** Each problem in its own new context: exactly a lone run's result, no batching across problems. */
  freshContext?: boolean;
  exitCue: string;
  promptStyle?: PromptStyle;
  /** Called when a method (or sweep) starts, with its settings and the number of records it will write. */
  onMethod?: (name: string, settings: readonly string[], records: number) => void;
  onProgress?: () => void;
}

export async function evaluateStep(o: EvaluateStepOptions): Promise<RunResult[]> {
  const problems = loadBenchmark(o.benchmark, o.selection);
  if (problems.length === 0) throw new InvalidInputError(`no problems selected from ${o.benchmark}`);
  const methods = methodsFor(o.spec);
  const composed = composeModeOf(o.spec.method) !== undefined;
  if (composed && o.small === undefined) throw new InvalidInputError(`--method ${o.spec.method} composes two models: give the small one with --small SMALL (-m is the big one)`);
  if (!composed && o.small !== undefined) throw new InvalidInputError(`--small is for the big/small compositions (${COMPOSE_MODES.join(', ')}); --method ${o.spec.method} runs one model`);
  const model = typeof o.model === 'string' ? await openModel(o.model) : o.model;
  const small = o.small === undefined ? undefined : typeof o.small === 'string' ? await openModel(o.small) : o.small;
  const contextFor = (m: LlamaModel, n: number, role: 'big' | 'small') =>
    new LlamaContext(m, {
      ...contextNeeds(o.spec.method, n, o.maxTokens, { model: role, handBackEvery: o.spec.handBackEvery, candidates: o.spec.candidates }),
      // Batch-invariant numerics (see ContextOptions.kvType): a problem's trace depends only slightly on which other
      // problems decode beside it (their cells in the shared KV cache); freshContext removes even that.
      kvType: 'f32',
      flashAttention: false,
    });
  const problemsAtOnce = o.freshContext ? 1 : o.concurrency;
  const context = contextFor(model, problemsAtOnce, 'big');
  const smallContext = small ? contextFor(small, problemsAtOnce, 'small') : undefined;
  const env = methodEnv({
    context,
    sampler: o.sampler,
    maxTokens: o.maxTokens,
    exitCue: o.exitCue,
    seed: o.seed,
    ...(smallContext ? { small: new LocalGenerator(smallContext) } : {}),
  });
  const results: RunResult[] = [];
  try {
    for (const method of methods) {
      const settings = 'settings' in method ? method.settings : [method.setting];
      o.onMethod?.(method.name, settings, problems.length * settings.length);
      results.push(
        ...(await evaluateMethod({
          problems,
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
                const c = contextFor(model, 1, 'big');
                const s = small ? contextFor(small, 1, 'small') : undefined;
                return {
                  generator: new LocalGenerator(c),
                  ...(s ? { small: new LocalGenerator(s) } : {}),
                  dispose: () => {
                    c.dispose();
                    s?.dispose();
                  },
                };
              }
            : undefined,
          config: { method: o.spec.method, rule: o.spec.rule ?? 'lynx', probe: o.spec.probe, freshContext: o.freshContext === true },
          onProgress: o.onProgress,
        })),
      );
    }
  } finally {
    context.dispose();
    smallContext?.dispose();
    if (typeof o.model === 'string') model.dispose();
    if (small && typeof o.small === 'string') small.dispose();
  }
  return results;
}
