import type { Command } from 'commander';
import { LlamaContext, LlamaModel } from '../../engine/index.js';
import { evaluateMethod } from '../../eval/evaluate-method.js';
import { checkPolicy } from '../../tasks/answer-equiv.js';
import { methodEnv, fullRollout, tokenBudget, type ReasoningMethod, type ReasoningSweep } from '../../reasoning/method.js';
import { deer, deerSweep } from '../../reasoning/peers/deer.js';
import { deepConf, deepConfSweep } from '../../reasoning/peers/deepconf.js';
import { dynasorCot, dynasorSweep } from '../../reasoning/peers/dynasor.js';
import { lynxMethod, lynxSweep } from '../../reasoning/lynx/online.js';
import { loadLynxPolicy } from '../../reasoning/lynx/policy.js';
import { InvalidInputError } from '../../util/errors.js';
import { parseShard } from '../../util/shard.js';
import { loadBenchmarkArg, problemSelectionOptions } from '../benchmark-arg.js';
import { resolveModelPath } from '../model-arg.js';
import { floatOption, intOption, listOption } from '../options.js';
import { progressBar } from '../progress.js';

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
  concurrency: number;
  freshContext?: boolean;
  exitCue: string;
  promptStyle?: 'zst' | 'csqa';
}

const numbers = (xs: string[] | undefined, name: string, fallback?: number[]): number[] => {
  if (!xs || xs.length === 0) {
    if (fallback) return fallback;
    throw new InvalidInputError(`give ${name}`);
  }
  return xs.map((x) => {
    const n = Number(x);
    if (!Number.isFinite(n)) throw new InvalidInputError(`${name}: '${x}' is not a number`);
    return n;
  });
};

/** The method (or sweep of settings) the options name. */
export function methodFromArgs(args: EvalArgs): ReasoningMethod | ReasoningSweep | (ReasoningMethod | ReasoningSweep)[] {
  switch (args.method) {
    case 'full':
      return fullRollout();
    case 'budget':
      return numbers(args.budget, '--budget B[,B...]').map((b) => tokenBudget(b));
    case 'lynx': {
      if (!args.probe) throw new InvalidInputError('--method lynx needs --probe EXP (an experiment folder with probe/ and conformal/)');
      const policies = numbers(args.delta, '--delta', [0.1]).map((delta) => loadLynxPolicy(args.probe!, { rule: args.rule, delta }));
      // Several deltas: one generation per problem serves them all (the probe never changes the trace before the exit).
      // The rules come from one folder and share its probe.
      return policies.length === 1 ? lynxMethod(policies[0]!) : lynxSweep(policies.map((p) => ({ ...p, probe: policies[0]!.probe })));
    }
    case 'deer': {
      const t = numbers(args.threshold, '--threshold', [0.95]);
      return t.length === 1 ? deer({ threshold: t[0] }) : deerSweep(t);
    }
    case 'deepconf': {
      const b = numbers(args.traces, '--traces', [16]);
      const opts = { variant: args.variant, warmupTraces: args.warmup };
      return b.length === 1 ? deepConf({ ...opts, budget: b[0] }) : deepConfSweep(b, opts);
    }
    case 'dynasor': {
      const n = numbers(args.agreement, '--agreement', [2]);
      return n.length === 1 ? dynasorCot({ agreement: n[0], interval: args.interval }) : dynasorSweep(n, { interval: args.interval });
    }
    default:
      throw new InvalidInputError(`unknown method '${args.method}': use full, budget, lynx, deer, deepconf or dynasor`);
  }
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
    .option('-c, --concurrency <n>', 'problems decoded together', intOption('--concurrency', 1), 4)
    .option('--fresh-context', "each problem in its own new context: exactly a lone run's result (as the dataset builder's rollouts), no batching across problems")
    .option('--exit-cue <cue>', 'paper, answer_tag or literal text', 'paper')
    .action(async (args: EvalArgs) => {
      await runEvalCommand(args);
    });
}

export async function runEvalCommand(args: EvalArgs): Promise<void> {
  const policy = checkPolicy(args.policy);
  const shard = args.shard ? parseShard(args.shard) : undefined;
  const problems = await loadBenchmarkArg(args);
  if (problems.length === 0) throw new InvalidInputError(`no problems selected from ${args.benchmark}`);
  const model = LlamaModel.load(await resolveModelPath(args.model));
  const methods = [methodFromArgs(args)].flat();
  const forks = args.method === 'deepconf' ? 16 : 4;
  const contextFor = (problems: number) =>
    new LlamaContext(model, {
      nCtx: problems * (args.maxTokens + 1024) * (args.method === 'deepconf' ? 4 : 1),
      nSeqMax: problems * (1 + forks),
      // Batch-invariant numerics (see ContextOptions.kvType): a problem's trace depends only slightly on which other
      // problems decode beside it (their cells in the shared KV cache); --fresh-context removes even that.
      kvType: 'f32',
      flashAttention: false,
    });
  const context = contextFor(args.freshContext ? 1 : args.concurrency);
  const env = methodEnv({
    model,
    context,
    sampler: { temperature: args.temperature, topP: args.topP },
    maxTokens: args.maxTokens,
    exitCue: args.exitCue,
    seed: args.seed,
  });
  try {
    for (const method of methods) {
      const settings = 'settings' in method ? method.settings : [method.setting];
      const bar = progressBar(`${method.name} ${settings.join(' ')}`, problems.length * settings.length);
      const results = await evaluateMethod({
        model,
        problems,
        benchmark: args.benchmark.replace(/\.jsonl$/, '').replace(/.*\//, ''),
        root: args.out,
        method,
        env,
        policy,
        promptStyle: args.promptStyle,
        shard,
        concurrency: args.concurrency,
        freshContext: args.freshContext ? () => contextFor(1) : undefined,
        config: { method: args.method, rule: args.rule, probe: args.probe, freshContext: args.freshContext === true },
        onProgress: () => bar.tick(),
      });
      bar.stop();
      for (const r of results) {
        const m = r.metrics;
        process.stdout.write(
          `${m.method} ${m.setting}: accuracy ${(m.accuracy * 100).toFixed(1)}% [${m.accuracyCi95.map((x) => (x * 100).toFixed(1)).join(', ')}], ` +
            `avg tokens ${m.avgTokens.toFixed(0)}, n ${m.n} -> ${r.dir}\n`,
        );
      }
    }
  } finally {
    context.dispose();
    model.dispose();
  }
}
