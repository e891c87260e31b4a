import type { Command } from 'commander';
import { evaluateStep, type EvaluateStepOptions } from '../../pipeline/evaluate.js';
import type { MethodSpec } from '../../pipeline/methods.js';
import type { ComposeSummary } from '../../reasoning/compose/stats.js';
import { checkGrading } from '../../tasks/answer-equiv.js';
import { checkPromptStyle } from '../../tasks/prompts.js';
import { DEFAULT_DEEPCONF_TRACES } from '../../pipeline/methods.js';
import { accountingOptions, budgetForcingOf, exitAccountingOf } from '../accounting-options.js';
import { UsageError, asUsage } from '../../util/errors.js';
import { parseShard } from '../../util/shard.js';
import { problemSelectionOptions, selectionOf } from '../benchmark-arg.js';
import { MAX_TOKEN_BUDGET, floatOption, intOption, listOption, parseNumberList, probabilityOption, temperatureOption, tokensOption } from '../options.js';
import { checkWritableDir } from '../output-checks.js';
import { skipWarning } from '../prompt-warnings.js';
import { progressBar, rate } from '../progress.js';
import { SAMPLER_HELP, samplerOf, samplerOption, type SamplerSpec } from '../sampler-arg.js';
import { decodingOptions, decodingSpecOf, type DecodingArgs } from '../decoding-args.js';
import { backendOf, backendOptions, remoteDetail, type BackendArgs } from '../backend-args.js';
import type { RemoteProgress } from '../../pipeline/backend.js';

export interface EvalArgs extends DecodingArgs, BackendArgs {
  model: string;
  small?: string;
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
  handBackEvery?: number;
  segmentCap?: number;
  switchRatio?: string[];
  switchChunk?: number;
  candidates?: number;
  draftTokens?: number;
  decay?: number;
  bigTokens?: number;
  offloadHint?: boolean;
  scoreThreshold?: number;
  out: string;
  shard?: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  sampler?: SamplerSpec;
  seed: number;
  policy: string;
  concurrency?: number;
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
    handBackEvery: args.handBackEvery,
    segmentCap: args.segmentCap,
    switchRatios: parseNumberList(args.switchRatio, '--switch-ratio', 0, Infinity, { openMin: true }),
    switchChunk: args.switchChunk,
    candidates: args.candidates,
    draftTokens: args.draftTokens,
    decay: args.decay,
    bigTokens: args.bigTokens,
    offloadHint: args.offloadHint,
    scoreThreshold: args.scoreThreshold,
  };
}

export function registerEval(program: Command): void {
  const command = program
    .command('eval')
    .description('evaluate a method on a benchmark; writes <out>/eval/<benchmark>/<method>/<setting>/{metrics.json,predictions.jsonl,config.json}')
    .requiredOption('-m, --model <path>', 'GGUF file or Hugging Face folder (with --small: the big model)')
    .option('--small <path>', 'the small model of a big/small composition (--method split, random-switch, logprob-subselect, small, big)')
    .requiredOption('-b, --benchmark <name>', 'gsm8k, math, math500, aime24, amc23, commonsenseqa, demo, or a .jsonl file')
    .requiredOption('-o, --out <dir>', 'experiment folder')
    .option('--method <name>', 'full, budget, lynx, deer, deepconf, dynasor; with --small: split, random-switch, logprob-subselect, specreason, small, big, or MODE+METHOD (e.g. split+lynx)', 'full')
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
    .option('--interval <k>', 'dynasor: probe every k tokens', intOption('--interval', 1), 32)
    .option('--hand-back-every <n>', 'split: big tokens between checks whether the small model would close the segment (default 8)', intOption('--hand-back-every', 1))
    .option('--segment-cap <n>', 'split: longest big segment in tokens (default 128)', intOption('--segment-cap', 1))
    .option('--switch-ratio <list>', 'random-switch: P(big) = 1/(ratio+1) per chunk (several = several runs)', listOption)
    .option('--switch-chunk <n>', 'random-switch: tokens per chunk (default 16)', intOption('--switch-chunk', 1))
    .option('--candidates <n>', 'logprob-subselect: drafts at the start (default 4)', intOption('--candidates', 2))
    .option('--draft-tokens <n>', 'logprob-subselect: small tokens per draft and round (default 64)', intOption('--draft-tokens', 1))
    .option('--decay <n>', 'logprob-subselect: keep 1/decay of the drafts per round (default 2)', intOption('--decay', 2))
    .option('--big-tokens <n>', 'logprob-subselect: big tokens added to each kept draft per round (default 16)', intOption('--big-tokens', 0))
    .option('--score-threshold <s>', 'specreason: keep a small step the big model scores at least this (0-9, default 7)', floatOption('--score-threshold', 0, 10))
    .option('--offload-hint', "small, random-switch: prompt the small model with SplitReason's hint and hide its tags from the big model (a small model trained on the tags)");
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
    .option('-c, --concurrency <n>', 'problems decoded together (default 4; with --backend openai, --max-inflight)', intOption('--concurrency', 1, 256))
    .option('--fresh-context', "each problem in its own new context: exactly a lone run's result (as the dataset builder's rollouts), no batching across problems")
    .option('--exit-cue <cue>', 'paper, answer_tag or literal text', 'paper')
    .option('--max-prompt-tokens <n>', "longest prompt accepted (default: the model's training context)", tokensOption('--max-prompt-tokens'))
    .option('--skip-long-prompts', 'leave out problems whose prompt is longer (each named on stderr) instead of refusing the run');
  accountingOptions(backendOptions(decodingOptions(command)), 'on, deepconf off').action(async (args: EvalArgs) => {
    await runEvalCommand(args);
  });
}

/** The pipeline step's options from the command's arguments. */
export function evaluateOptions(args: EvalArgs): Omit<EvaluateStepOptions, 'onMethod' | 'onProgress'> {
  return asUsage(() => ({
    model: args.model,
    small: args.small,
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
    decoding: decodingSpecOf(args),
    log: (line) => process.stderr.write(`${line}\n`),
    ...backendOf(args),
    maxPromptTokens: args.maxPromptTokens,
    skipLongPrompts: args.skipLongPrompts,
    onSkip: skipWarning,
  }));
}

export async function runEvalCommand(args: EvalArgs): Promise<void> {
  const options = evaluateOptions(args);
  checkWritableDir(args.out, '-o');
  let bar: ReturnType<typeof progressBar> | undefined;
  let done = 0;
  let remote: RemoteProgress | undefined;
  const results = await evaluateStep({
    ...options,
    onMethod: (name, settings, records) => {
      bar?.stop();
      done = 0;
      bar = progressBar(`${name} ${settings.join(' ')}`, records, (sec) => `${rate(done, sec)} records${remote ? `, ${rate(remote.tokens, sec, ' tok')} streamed` : ''}${remoteDetail(remote)}`);
    },
    onProgress: (r) => {
      done++;
      remote = r;
      bar?.tick();
    },
  });
  bar?.stop();
  for (const r of results) {
    const m = r.metrics;
    const c = m.extra?.compose as ComposeSummary | undefined;
    const composed = c ? `, offload ${(c.offloadShare * 100).toFixed(1)}%, ${c.handoffsPerProblem.toFixed(1)} hand-offs, wall ${m.wallSec.toFixed(1)} s` : '';
    process.stdout.write(
      `${m.method} ${m.setting}: accuracy ${(m.accuracy * 100).toFixed(1)}% [${m.accuracyCi95.map((x) => (x * 100).toFixed(1)).join(', ')}], ` +
        `avg tokens ${m.avgTokens.toFixed(0)}${composed}, n ${m.n} -> ${r.dir}\n`,
    );
  }
}
