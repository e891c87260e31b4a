/**
 * `lynx eval`: a method (or a sweep of its settings) on a benchmark, written as run folders under
 * `<out>/eval/<benchmark>/<method>/<setting>/` by the resumable runner.
 */
import { DecodingGenerator } from '../backends/decoding.js';
import { LocalGenerator } from '../backends/local.js';
import type { Generator } from '../backends/generator.js';
import { LlamaContext, type LlamaModel } from '../engine/index.js';
import { evaluateMethod } from '../eval/evaluate-method.js';
import type { RunResult } from '../eval/runner.js';
import { methodEnv } from '../reasoning/method.js';
import type { Grading } from '../tasks/answer-equiv.js';
import type { PromptStyle } from '../tasks/prompts.js';
import { benchmarkLabel, loadBenchmark, type BenchmarkSelection } from '../tasks/registry.js';
import { InvalidInputError } from '../util/errors.js';
import { contextNeeds, methodsFor, type MethodSpec } from './methods.js';
import { openModel } from './model.js';
import { openDecoding, type DecodingSpec } from './decoding.js';

export interface EvaluateStepOptions {
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
  /** Problems decoded together. */
  concurrency: number;
  /** Each problem in its own new context: exactly a lone run's result, no batching across problems. */
  freshContext?: boolean;
  exitCue: string;
  promptStyle?: PromptStyle;
  /** Called when a method (or sweep) starts, with its settings and the number of records it will write. */
  onMethod?: (name: string, settings: readonly string[], records: number) => void;
  onProgress?: () => void;
  /** Generate with speculative decoding (`draft`) or layer exit (`layerExit`); the method is unchanged. */
  decoding?: DecodingSpec;
  log?: (line: string) => void;
}

export async function evaluateStep(o: EvaluateStepOptions): Promise<RunResult[]> {
  const problems = loadBenchmark(o.benchmark, o.selection);
  if (problems.length === 0) throw new InvalidInputError(`no problems selected from ${o.benchmark}`);
  const methods = methodsFor(o.spec);
  const model = typeof o.model === 'string' ? await openModel(o.model) : o.model;
  const contextFor = (n: number) =>
    new LlamaContext(model, {
      ...contextNeeds(o.spec.method, n, o.maxTokens),
      // Batch-invariant numerics (see ContextOptions.kvType): a problem's trace depends only slightly on which other
      // problems decode beside it (their cells in the shared KV cache); freshContext removes even that.
      kvType: 'f32',
      flashAttention: false,
    });
  const context = contextFor(o.freshContext ? 1 : o.concurrency);
  const needs = contextNeeds(o.spec.method, o.freshContext ? 1 : o.concurrency, o.maxTokens);
  const decoding = o.decoding ? await openDecoding(model, o.decoding, { parallel: needs.nSeqMax, contextTokens: o.maxTokens + 1024, log: o.log }) : undefined;
  const generatorOf = (c: LlamaContext): Generator => (decoding ? new DecodingGenerator(new LocalGenerator(c), decoding.mode) : new LocalGenerator(c));
  const env = methodEnv({ generator: generatorOf(context), sampler: o.sampler, maxTokens: o.maxTokens, exitCue: o.exitCue, seed: o.seed });
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
                const c = contextFor(1);
                return { generator: generatorOf(c), dispose: () => c.dispose() };
              }
            : undefined,
          config: {
            method: o.spec.method,
            rule: o.spec.rule ?? 'lynx',
            probe: o.spec.probe,
            freshContext: o.freshContext === true,
            ...(decoding ? { decoding: decoding.mode.name, lossless: decoding.mode.lossless } : {}),
          },
          onProgress: o.onProgress,
        })),
      );
    }
  } finally {
    context.dispose();
    decoding?.dispose();
    if (typeof o.model === 'string') model.dispose();
  }
  return results;
}
