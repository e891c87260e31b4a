/**
 * `lynx eval`: a method (or a sweep of its settings) on a benchmark, written as run folders under
 * `<out>/eval/<benchmark>/<method>/<setting>/` by the resumable runner.
 */
import type { Generator } from '../backends/generator.js';
import { LocalGenerator } from '../backends/local.js';
import { OpenAIGenerator, TapContext, type RemoteServer } from '../backends/openai/index.js';
import { LlamaContext, MAX_SEQUENCES, type LlamaModel } from '../engine/index.js';
import { evaluateMethod } from '../eval/evaluate-method.js';
import type { RunResult } from '../eval/runner.js';
import { methodEnv } from '../reasoning/method.js';
import type { Grading } from '../tasks/answer-equiv.js';
import type { PromptStyle } from '../tasks/prompts.js';
import { benchmarkLabel, loadBenchmark, type BenchmarkSelection } from '../tasks/registry.js';
import { InvalidInputError } from '../util/errors.js';
import { connectBackend, remoteProgress, type BackendOptions, type RemoteProgress } from './backend.js';
import { contextNeeds, methodsFor, type MethodSpec } from './methods.js';
import { openModel } from './model.js';

export interface EvaluateStepOptions extends BackendOptions {
  /** A loaded model, or a GGUF file / Hugging Face folder to load (and dispose at the end). */
  model: LlamaModel | string;
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
  /** Problems decoded together. Default 4 locally, `maxInflight` with a remote backend. */
  concurrency?: number;
  /** Each problem in its own new context: exactly a lone run's result, no batching across problems. */
  freshContext?: boolean;
  exitCue: string;
  promptStyle?: PromptStyle;
  /** Called when a method (or sweep) starts, with its settings and the number of records it will write. */
  onMethod?: (name: string, settings: readonly string[], records: number) => void;
  /** After every record; `remote` while generating on a server. */
  onProgress?: (remote?: RemoteProgress) => void;
}

export async function evaluateStep(o: EvaluateStepOptions): Promise<RunResult[]> {
  const problems = loadBenchmark(o.benchmark, o.selection);
  if (problems.length === 0) throw new InvalidInputError(`no problems selected from ${o.benchmark}`);
  const methods = methodsFor(o.spec);
  const model = typeof o.model === 'string' ? await openModel(o.model) : o.model;
  const results: RunResult[] = [];
  let server: RemoteServer | undefined;
  let generatorFor: (problems: number) => { generator: Generator; dispose(): void };
  try {
    server = await connectBackend(o, model);
    const remote = server;
    // Hidden states of a remote trace are read by a local prefill: a local context only for the methods that tap.
    const taps = remote !== undefined && methods.some((m) => m.requires?.includes('hiddenStates'));
    generatorFor = (n) => {
      if (remote) {
        if (!taps) return { generator: new OpenAIGenerator(remote, model), dispose: () => {} };
        const c = new LlamaContext(model, { nCtx: n * (o.maxTokens + 1024), nSeqMax: Math.min(MAX_SEQUENCES, 2 * n), kvType: 'f32', flashAttention: false });
        const t = new TapContext(c);
        return { generator: new OpenAIGenerator(remote, model, t), dispose: () => t.dispose() };
      }
      const c = new LlamaContext(model, {
        ...contextNeeds(o.spec.method, n, o.maxTokens),
        // Batch-invariant numerics (see ContextOptions.kvType): a problem's trace depends only slightly on which other
        // problems decode beside it (their cells in the shared KV cache); freshContext removes even that.
        kvType: 'f32',
        flashAttention: false,
      });
      return { generator: new LocalGenerator(c), dispose: () => c.dispose() };
    };
  } catch (e) {
    if (typeof o.model === 'string') model.dispose();
    throw e;
  }
  const concurrency = o.concurrency ?? server?.limit.max ?? 4;
  const main = generatorFor(o.freshContext ? 1 : concurrency);
  const env = methodEnv({ generator: main.generator, sampler: o.sampler, maxTokens: o.maxTokens, exitCue: o.exitCue, seed: o.seed });
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
          concurrency,
          freshGenerator: o.freshContext ? () => generatorFor(1) : undefined,
          config: {
            method: o.spec.method,
            rule: o.spec.rule ?? 'lynx',
            probe: o.spec.probe,
            freshContext: o.freshContext === true,
            ...(server ? { generator: server.describe() } : {}),
          },
          onProgress: o.onProgress && (() => o.onProgress!(server ? remoteProgress(server) : undefined)),
        })),
      );
    }
  } finally {
    main.dispose();
    if (typeof o.model === 'string') model.dispose();
  }
  return results;
}
