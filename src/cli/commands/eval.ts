import type { Command } from 'commander';
import { evaluateStep, type EvaluateStepOptions } from '../../pipeline/evaluate.js';
import type { MethodSpec } from '../../pipeline/methods.js';
import { checkGrading } from '../../tasks/answer-equiv.js';
import { checkPromptStyle } from '../../tasks/prompts.js';
import { DEFAULT_DEEPCONF_TRACES } from '../../pipeline/methods.js';
import { accountingOptions, budgetForcingOf, exitAccountingOf } from '../accounting-options.js';
import { UsageError, asUsage } from '../../util/errors.js';
import { parseShard } from '../../util/shard.js';
import { problemSelectionOptions, selectionOf } from '../benchmark-arg.js';
import { MAX_TOKEN_BUDGET, intOption, listOption, parseNumberList, probabilityOption, temperatureOption, tokensOption } from '../options.js';
import { checkWritableDir } from '../output-checks.js';
import { skipWarning } from '../prompt-warnings.js';
import { progressBar } from '../progress.js';
import { SAMPLER_HELP, samplerOf, samplerOption, type SamplerSpec } from '../sampler-arg.js';

export interface EvalArgs {
  model: string;
  benchmark: string;
  dataDir?: string;
  split?: 'train' | 'test';
  limit?: number;
  limitPerSubset?: number;
  subsetOffset?: number;
  subsets?: string[];
  method: string;
  budget?: string[];
  delta?: string[];
  rule: string;
  probe?: string;
  allowClipped?: boolean;
  threshold?: string[];
  trialSampling?: string;
  traces?: string[];
  variant: 'low' | 'high';
  warmup?: number;
  window?: number;
  agreement?: string[];
  interval: number;
  out: string;
  shard?: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  sampler?: SamplerSpec;
  seed: number;
  policy: string;
  concurrency: number;
  freshContext?: boolean;
  exitCue: string;
  promptStyle?: string;
  splitOffset?: number;
  splitSeed?: number;
  testRollouts: number;
  exitAccounting?: string;
  budgetForcing?: string;
  maxPromptTokens?: number;
  skipLongPrompts?: boolean;
}


function trialSamplingOf(v: string | undefined): 'sample' | 'greedy' | undefined {
  if (v === undefined || v === 'sample' || v === 'greedy') return v;
  throw new UsageError(`--trial-sampling must be sample or greedy (got '${v}')`);
}

/** The pipeline's method description from the command's arguments. */
export function methodSpecOf(args: EvalArgs): MethodSpec {
  return {
    method: args.method,
    budgets: parseNumberList(args.budget, '--budget', 1, MAX_TOKEN_BUDGET, { integer: true }),
    deltas: parseNumberList(args.delta, '--delta', 0, 1, { openMin: true, openMax: true }),
    rule: args.rule,
    probe: args.probe,
    allowClipped: args.allowClipped,
    thresholds: parseNumberList(args.threshold, '--threshold', 0, 1),
    trialSampling: trialSamplingOf(args.trialSampling),
    traces: parseNumberList(args.traces, '--traces', 1, Infinity, { integer: true }),
    variant: args.variant,
    warmup: args.warmup,
    window: args.window,
    agreements: parseNumberList(args.agreement, '--agreement', 1, Infinity, { integer: true }),
    interval: args.interval,
  };
}

export function registerEval(program: Command): void {
  const command = program
    .command('eval')
    .description('evaluate a method on a benchmark; writes <out>/eval/<benchmark>/<method>/<setting>/{metrics.json,predictions.jsonl,config.json}')
    .requiredOption('-m, --model <path>', 'GGUF file or Hugging Face folder')
    .requiredOption('-b, --benchmark <name>', 'gsm8k, math, math500, aime24, amc23, commonsenseqa, demo, or a .jsonl file')
    .requiredOption('-o, --out <dir>', 'experiment folder')
    .option('--method <name>', 'full, budget, lynx, deer, deepconf, dynasor', 'full')
    .option('--budget <list>', 'budget: thinking-token budgets', listOption)
    .option('--delta <list>', 'lynx: error levels', listOption)
    .option('--rule <name>', 'lynx: lynx (per event), ltt or crc (per problem)', 'lynx')
    .option('--probe <dir>', 'lynx: experiment folder with probe/ and conformal/')
    .option('--allow-clipped', 'lynx: exit with a rule whose quantile was clipped (too few wrong-exit calibration events), as LYNX does; default: it never exits')
    .option('--threshold <list>', 'deer: confidence thresholds (several = one generation, all settings)', listOption)
    .option('--trial-sampling <s>', "deer: sample (trial answers at temperature 1, as DEER's vLLM request; default) or greedy")
    .option('--traces <list>', `deepconf: trace budgets, warm-up included (default ${DEFAULT_DEEPCONF_TRACES})`, listOption)
    .option('--variant <v>', 'deepconf: low or high', 'low')
    .option('--warmup <n>', 'deepconf: warm-up traces (default 16)', intOption('--warmup', 1))
    .option('--window <n>', "deepconf: confidence window in tokens (default: the token budget scaled as DeepConf's 2048 of 64000)", intOption('--window', 1))
    .option('--agreement <list>', 'dynasor: agreeing probes needed', listOption)
    .option('--interval <k>', 'dynasor: probe every k tokens', intOption('--interval', 1), 32);
  problemSelectionOptions(command)
    .option('--prompt-style <style>', 'zst, csqa, ours (LYNX system prompt) or deer (default: by benchmark)')
    .option('--test-rollouts <n>', "rollouts per problem (LYNX's --test-rollouts); records <id>#<r>", intOption('--test-rollouts', 1), 1)
    .option('--shard <i/N>', 'run shard i of N (merge with lynx merge)')
    .option('-n, --max-tokens <n>', 'token budget per trace', tokensOption('--max-tokens', 16), 4096)
    .option('-t, --temperature <t>', 'sampling temperature', temperatureOption(), 0.6)
    .option('--top-p <p>', 'nucleus sampling', probabilityOption('--top-p'), 0.95)
    .option('--sampler <spec>', SAMPLER_HELP, samplerOption)
    .option('-s, --seed <n>', 'base seed', intOption('--seed', 0), 0)
    .option('--policy <p>', 'answer equivalence: strict, zst, deer', 'zst')
    .option('-c, --concurrency <n>', 'problems decoded together', intOption('--concurrency', 1, 256), 4)
    .option('--fresh-context', "each problem in its own new context: exactly a lone run's result (as the dataset builder's rollouts), no batching across problems")
    .option('--exit-cue <cue>', 'paper, answer_tag or literal text', 'paper')
    .option('--max-prompt-tokens <n>', "longest prompt accepted (default: the model's training context)", tokensOption('--max-prompt-tokens'))
    .option('--skip-long-prompts', 'leave out problems whose prompt is longer (each named on stderr) instead of refusing the run');
  accountingOptions(command, 'on, deepconf off').action(async (args: EvalArgs) => {
    await runEvalCommand(args);
  });
}

/** The pipeline step's options from the command's arguments. */
export function evaluateOptions(args: EvalArgs): Omit<EvaluateStepOptions, 'onMethod' | 'onProgress'> {
  return asUsage(() => ({
    model: args.model,
    benchmark: args.benchmark,
    selection: selectionOf(args),
    out: args.out,
    spec: methodSpecOf(args),
    shard: args.shard ? parseShard(args.shard) : undefined,
    maxTokens: args.maxTokens,
    sampler: samplerOf(args),
    seed: args.seed,
    grading: checkGrading(args.policy),
    concurrency: args.concurrency,
    freshContext: args.freshContext,
    exitCue: args.exitCue,
    exitAccounting: exitAccountingOf(args.exitAccounting),
    budgetForcing: budgetForcingOf(args.budgetForcing),
    testRollouts: args.testRollouts === 1 ? undefined : args.testRollouts,
    promptStyle: args.promptStyle === undefined ? undefined : checkPromptStyle(args.promptStyle),
    maxPromptTokens: args.maxPromptTokens,
    skipLongPrompts: args.skipLongPrompts,
    onSkip: skipWarning,
  }));
}

export async function runEvalCommand(args: EvalArgs): Promise<void> {
  const options = evaluateOptions(args);
  checkWritableDir(args.out, '-o');
  let bar: ReturnType<typeof progressBar> | undefined;
  const results = await evaluateStep({
    ...options,
    onMethod: (name, settings, records) => {
      bar?.stop();
      bar = progressBar(`${name} ${settings.join(' ')}`, records);
    },
    onProgress: () => bar?.tick(),
  });
  bar?.stop();
  for (const r of results) {
    const m = r.metrics;
    process.stdout.write(
      `${m.method} ${m.setting}: accuracy ${(m.accuracy * 100).toFixed(1)}% [${m.accuracyCi95.map((x) => (x * 100).toFixed(1)).join(', ')}], ` +
        `avg tokens ${m.avgTokens.toFixed(0)}, n ${m.n} -> ${r.dir}\n`,
    );
  }
}
