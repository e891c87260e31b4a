import type { Command } from 'commander';
import { evaluateStep, type EvaluateStepOptions } from '../../pipeline/evaluate.js';
import type { MethodSpec } from '../../pipeline/methods.js';
import { checkGrading } from '../../tasks/answer-equiv.js';
import { InvalidInputError } from '../../util/errors.js';
import { parseShard } from '../../util/shard.js';
import { problemSelectionOptions, selectionOf } from '../benchmark-arg.js';
import { floatOption, intOption, listOption } from '../options.js';
import { progressBar, rate } from '../progress.js';
import { backendOf, backendOptions, remoteDetail, type BackendArgs } from '../backend-args.js';
import type { RemoteProgress } from '../../pipeline/backend.js';

export interface EvalArgs extends BackendArgs {
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
  threshold?: string[];
  traces?: string[];
  variant: 'low' | 'high';
  warmup?: number;
  agreement?: string[];
  interval: number;
  out: string;
  shard?: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  policy: string;
  concurrency?: number;
  freshContext?: boolean;
  exitCue: string;
  promptStyle?: 'zst' | 'csqa';
}

const numbers = (xs: string[] | undefined, name: string): number[] | undefined =>
  xs?.map((x) => {
    const n = Number(x);
    if (!Number.isFinite(n)) throw new InvalidInputError(`${name}: '${x}' is not a number`);
    return n;
  });

/** The pipeline's method description from the command's arguments. */
export function methodSpecOf(args: EvalArgs): MethodSpec {
  return {
    method: args.method,
    budgets: numbers(args.budget, '--budget'),
    deltas: numbers(args.delta, '--delta'),
    rule: args.rule,
    probe: args.probe,
    thresholds: numbers(args.threshold, '--threshold'),
    traces: numbers(args.traces, '--traces'),
    variant: args.variant,
    warmup: args.warmup,
    agreements: numbers(args.agreement, '--agreement'),
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
    .option('--threshold <list>', 'deer: confidence thresholds (several = one generation, all settings)', listOption)
    .option('--traces <list>', 'deepconf: trace budgets', listOption)
    .option('--variant <v>', 'deepconf: low or high', 'low')
    .option('--warmup <n>', 'deepconf: warm-up traces', intOption('--warmup', 1))
    .option('--agreement <list>', 'dynasor: agreeing probes needed', listOption)
    .option('--interval <k>', 'dynasor: probe every k tokens', intOption('--interval', 1), 32);
  problemSelectionOptions(command)
    .option('--prompt-style <style>', 'zst or csqa (default: by benchmark)')
    .option('--shard <i/N>', 'run shard i of N (merge with lynx merge)')
    .option('-n, --max-tokens <n>', 'token budget per trace', intOption('--max-tokens', 16), 4096)
    .option('-t, --temperature <t>', 'sampling temperature', floatOption('--temperature', 0), 0.6)
    .option('--top-p <p>', 'nucleus sampling', floatOption('--top-p', 0, 1), 0.95)
    .option('-s, --seed <n>', 'base seed', intOption('--seed', 0), 0)
    .option('--policy <p>', 'answer equivalence: strict, zst, deer', 'zst')
    .option('-c, --concurrency <n>', 'problems decoded together (default 4; with --backend openai, --max-inflight)', intOption('--concurrency', 1))
    .option('--fresh-context', "each problem in its own new context: exactly a lone run's result (as the dataset builder's rollouts), no batching across problems")
    .option('--exit-cue <cue>', 'paper, answer_tag or literal text', 'paper');
  backendOptions(command)
    .action(async (args: EvalArgs) => {
      await runEvalCommand(args);
    });
}

/** The pipeline step's options from the command's arguments. */
export function evaluateOptions(args: EvalArgs): Omit<EvaluateStepOptions, 'onMethod' | 'onProgress'> {
  return {
    model: args.model,
    benchmark: args.benchmark,
    selection: selectionOf(args),
    out: args.out,
    spec: methodSpecOf(args),
    shard: args.shard ? parseShard(args.shard) : undefined,
    maxTokens: args.maxTokens,
    sampler: { temperature: args.temperature, topP: args.topP },
    seed: args.seed,
    grading: checkGrading(args.policy),
    concurrency: args.concurrency,
    freshContext: args.freshContext,
    exitCue: args.exitCue,
    promptStyle: args.promptStyle,
    ...backendOf(args),
  };
}

export async function runEvalCommand(args: EvalArgs): Promise<void> {
  let bar: ReturnType<typeof progressBar> | undefined;
  let done = 0;
  let remote: RemoteProgress | undefined;
  const results = await evaluateStep({
    ...evaluateOptions(args),
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
    process.stdout.write(
      `${m.method} ${m.setting}: accuracy ${(m.accuracy * 100).toFixed(1)}% [${m.accuracyCi95.map((x) => (x * 100).toFixed(1)).join(', ')}], ` +
        `avg tokens ${m.avgTokens.toFixed(0)}, n ${m.n} -> ${r.dir}\n`,
    );
  }
}
