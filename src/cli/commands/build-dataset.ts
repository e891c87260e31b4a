/**
 * `lynx build-dataset`: sample rollouts on a benchmark, label every cue event by a forced exit, and write the event
 * dataset (features + metadata) into a folder; resumable after any interruption, shardable (`--shard i/N`, joined with
 * `lynx merge`).
 */
import type { Command } from 'commander';
import { buildDatasetStep, type BuildDatasetStepOptions } from '../../pipeline/build-dataset.js';
import { CUE_VARIANTS, type CueOptions } from '../../reasoning/lynx/cues.js';
import { checkGrading } from '../../tasks/answer-equiv.js';
import { checkPromptStyle } from '../../tasks/prompts.js';
import { checkLastLayerTap } from '../../reasoning/lynx/features.js';
import { accountingOptions, budgetForcingOf, exitAccountingOf } from '../accounting-options.js';
import { UsageError, asUsage } from '../../util/errors.js';
import { parseShard } from '../../util/shard.js';
import { problemSelectionOptions, selectionOf } from '../benchmark-arg.js';
import { intOption, listOption, parseNumberList, probabilityOption, temperatureOption, threadsOption, tokensOption } from '../options.js';
import { checkDatasetDir } from '../output-checks.js';
import { skipWarning } from '../prompt-warnings.js';
import { progressBar, rate } from '../progress.js';
import { SAMPLER_HELP, samplerOf, samplerOption, type SamplerSpec } from '../sampler-arg.js';
import { backendOf, backendOptions, remoteDetail, type BackendArgs } from '../backend-args.js';
import type { RemoteProgress } from '../../pipeline/backend.js';

export interface BuildDatasetArgs extends BackendArgs {
  model: string;
  benchmark: string;
  out: string;
  rollouts: number;
  limit?: number;
  limitPerSubset?: number;
  subsetOffset?: number;
  subsets?: string[];
  split?: string;
  dataDir?: string;
  shard?: string;
  maxTokens: number;
  answerMaxTokens: number;
  temperature: number;
  topP: number;
  sampler?: SamplerSpec;
  seed: number;
  layers?: string[];
  cues: string;
  exitCue: string;
  maxEvents?: number;
  skipFirst: number;
  concurrency?: number;
  threads?: number;
  flushEvery: number;
  batched?: boolean;
  policy: string;
  promptStyle?: string;
  splitOffset?: number;
  splitSeed?: number;
  exitAccounting?: string;
  budgetForcing?: string;
  lastLayer?: string;
  maxPromptTokens?: number;
  skipLongPrompts?: boolean;
}

export function registerBuildDataset(program: Command): void {
  const command = program
    .command('build-dataset')
    .description('sample rollouts, label every cue event with a forced exit, and write the event dataset (resumable; --shard i/N, then lynx merge)')
    .requiredOption('-m, --model <path>', 'GGUF file or Hugging Face folder')
    .requiredOption('-b, --benchmark <name>', 'gsm8k, math, math500, aime24, amc23, commonsenseqa, demo[:probe|:calib|:test], or a .jsonl file')
    .requiredOption('-o, --out <dir>', 'dataset folder (an existing one is resumed)')
    .option('-r, --rollouts <n>', 'rollouts per problem', intOption('--rollouts', 1), 1);
  problemSelectionOptions(command)
    .option('--shard <i/N>', 'build only problems j with j mod N = i (one folder per shard; join with lynx merge)')
    .option('-n, --max-tokens <n>', 'token budget of a rollout', tokensOption('--max-tokens'), 4096)
    .option('--answer-max-tokens <n>', 'answer tokens decoded after the exit cue', tokensOption('--answer-max-tokens'), 64)
    .option('-t, --temperature <t>', 'sampling temperature', temperatureOption(), 0.6)
    .option('--top-p <p>', 'nucleus sampling', probabilityOption('--top-p'), 0.95)
    .option('--sampler <spec>', SAMPLER_HELP, samplerOption)
    .option('-s, --seed <n>', 'base seed (each rollout derives its own from it, the problem id and the rollout number)', intOption('--seed', 0), 0)
    .option('--layers <list>', "Hugging Face hidden-state indices read at each event, e.g. 9,16,28 (default: LYNX's for the model's depth)", listOption)
    .option('--cues <cues>', `cue words: ${Object.keys(CUE_VARIANTS).join(', ')}, or a comma-separated list (e.g. wait,hmm+)`, 'default')
    .option('--exit-cue <cue>', 'paper, answer_tag or literal text', 'paper')
    .option('--max-events <n>', 'keep at most n events per rollout (LYNX --events-per-rollout)', intOption('--max-events', 1))
    .option('--skip-first <n>', 'skip the first n events of each rollout (LYNX --skip-first-hmmwait)', intOption('--skip-first', 0), 0)
    .option('-c, --concurrency <n>', 'rollouts decoded together (default 4; with --backend openai, --max-inflight)', intOption('--concurrency', 1, 256))
    .option('--threads <n>', 'CPU threads (default: all cores)', threadsOption())
    .option('--batched', 'decode the rollouts in flight in one shared context: faster, but features then vary by ~1e-6 with what runs together (resumed or sharded builds are not byte-identical)')
    .option('--flush-every <n>', 'write to disk after every n finished rollouts', intOption('--flush-every', 1), 16)
    .option('--policy <p>', 'answer equivalence for labels: strict, zst, deer', 'zst')
    .option('--prompt-style <style>', 'zst, csqa, ours (LYNX system prompt) or deer (default: by benchmark)')
    .option('--max-prompt-tokens <n>', "longest prompt accepted (default: the model's training context)", tokensOption('--max-prompt-tokens'))
    .option('--skip-long-prompts', 'leave out problems whose prompt is longer (each named on stderr) instead of refusing the run')
    .option('--last-layer <tap>', "the last hidden-state index: final (after the final norm, as LYNX's Hugging Face features; default) or residual (before it)");
  accountingOptions(backendOptions(command), 'on')
    .action(async (args: BuildDatasetArgs) => {
      await runBuildDataset(args);
    });
}

function parseCues(spec: string): NonNullable<CueOptions['cues']> {
  const s = spec.trim();
  if (s in CUE_VARIANTS) return s as keyof typeof CUE_VARIANTS;
  const words = listOption(s);
  if (words.length === 0) throw new UsageError(`--cues: give ${Object.keys(CUE_VARIANTS).join(', ')} or a list of words`);
  return words;
}

/** The pipeline step's options from the command's arguments. */
export function buildDatasetOptions(args: BuildDatasetArgs): Omit<BuildDatasetStepOptions, 'signal' | 'onProgress'> {
  return asUsage(() => ({
    model: args.model,
    benchmark: args.benchmark,
    selection: selectionOf(args),
    outDir: args.out,
    rolloutsPerProblem: args.rollouts,
    layers: parseNumberList(args.layers, '--layers', -Infinity, Infinity, { integer: true }),
    cues: parseCues(args.cues),
    exitCue: args.exitCue,
    answerMaxTokens: args.answerMaxTokens,
    maxTokens: args.maxTokens,
    maxEventsPerRollout: args.maxEvents,
    skipFirstEvents: args.skipFirst,
    sampler: samplerOf(args),
    seed: args.seed,
    grading: checkGrading(args.policy),
    promptStyle: args.promptStyle === undefined ? undefined : checkPromptStyle(args.promptStyle),
    lastLayer: args.lastLayer === undefined ? undefined : checkLastLayerTap(args.lastLayer, '--last-layer'),
    exitAccounting: exitAccountingOf(args.exitAccounting),
    budgetForcing: budgetForcingOf(args.budgetForcing),
    shard: args.shard ? parseShard(args.shard) : undefined,
    numerics: args.batched ? 'batched' : 'exact',
    concurrency: args.concurrency,
    threads: args.threads,
    chunkUnits: args.flushEvery,
    maxPromptTokens: args.maxPromptTokens,
    skipLongPrompts: args.skipLongPrompts,
    onSkip: skipWarning,
    ...backendOf(args),
  }));
}

export async function runBuildDataset(args: BuildDatasetArgs): Promise<void> {
  const options = buildDatasetOptions(args);
  checkDatasetDir(args.out, '-o');
  const controller = new AbortController();
  const interrupt = (signal: NodeJS.Signals) => {
    // Write the rollouts that finished, then leave: the same command resumes from there.
    controller.abort(new Error(signal));
    process.stderr.write(`\nlynx: interrupted (${signal}); finished rollouts are saved in ${args.out}: run the same command to resume\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  let bar: ReturnType<typeof progressBar> | undefined;
  let shown = 0;
  let first: number | undefined;
  let latest: { done: number; tokens: number; remote?: RemoteProgress } = { done: 0, tokens: 0 };
  const shard = options.shard;
  try {
    const { result: r, summary: s } = await buildDatasetStep({
      ...options,
      signal: controller.signal,
      onProgress: (p) => {
        first ??= p.done;
        latest = p;
        // Throughput of this run: rollouts built (not those found done on disk) and the tokens they generated.
        bar ??= progressBar(`build-dataset${shard ? ` ${shard.index}/${shard.count}` : ''}`, p.total, (sec) =>
          `${rate(latest.done - first!, sec)} rollouts, ${rate(latest.tokens, sec, ' tok')}${remoteDetail(latest.remote)}`,
        );
        bar.tick(p.done - shown);
        shown = p.done;
      },
    });
    bar?.stop();
    const pct = (a: number, b: number) => (b > 0 ? `${((100 * a) / b).toFixed(1)}%` : 'n/a');
    process.stdout.write(
      `${s.rows} rows, ${s.rollouts} rollouts (${r.rollouts} built, ${r.skipped} already done), label-1 rate ${pct(s.labelOnes, s.rows)}, ` +
        `${s.rollouts > 0 ? (s.rows / s.rollouts).toFixed(2) : '0'} events per rollout, ${s.synthetic} synthetic events, ` +
        `full-rollout accuracy ${pct(s.fullCorrect, s.rolloutsWithEvents)}, ` +
        `${r.seconds.toFixed(1)} s -> ${r.dir}\n`,
    );
  } finally {
    bar?.stop();
    process.removeListener('SIGINT', interrupt);
    process.removeListener('SIGTERM', interrupt);
  }
}
