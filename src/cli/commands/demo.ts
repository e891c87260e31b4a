import type { Command } from 'commander';
import { cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LlamaModel } from '../../engine/index.js';
import { demoBenchmark } from '../../tasks/demo/benchmark.js';
import { compareWithBaseline, type DemoProblemResult } from '../../demo/compare.js';
import { measureBehaviour, mergeStageCurves, writeModelCard } from '../../demo/model-card.js';
import { requireShippedDemo, shippedDemo } from '../../demo/shipped.js';
import { runDemoExperiment } from '../../demo/experiment.js';
import { measureStepErrors, stepErrorMarkdown } from '../../demo/step-errors.js';
import { DEMO_RECIPES, recipeWith, trainDemoModel, type LossCurveFile } from '../../demo/train.js';
import { loadLynxPolicy } from '../../reasoning/lynx/policy.js';
import { InvalidInputError } from '../../util/errors.js';
import { deltaOption, floatOption, intOption, temperatureOption, threadsOption } from '../options.js';
import { progressBar } from '../progress.js';
import { paint } from '../terminal.js';
import { experimentMarkdown } from '../../report/markdown.js';
import { OFFLOAD_HINT } from '../../reasoning/compose/protocol.js';

interface DemoArgs {
  problems: number;
  benchmark: string;
  delta: number;
  rule: string;
  seed: number;
  temperature: number;
  maxTokens: number;
  concurrency: number;
  json?: boolean;
  dir?: string;
}

export function registerDemo(program: Command): void {
  const demo = program
    .command('demo')
    .description("answer held-out problems with the shipped demo reasoner, thinking to the end and with LYNX early exit (same seed), and compare")
    .enablePositionalOptions()
    .option('-n, --problems <n>', 'problems (interleaved over the 5 difficulty levels)', intOption('--problems', 1), 20)
    .option('-b, --benchmark <name>', 'demo problem set: demo:test, demo:test:1-2, ...', 'demo:test')
    .option('--delta <d>', 'error level of the stop rule', deltaOption(), 0.1)
    .option('--rule <name>', 'lynx (per event, the paper), ltt or crc (per problem)', 'lynx')
    .option('-s, --seed <n>', 'sampling seed', intOption('--seed', 0), 0)
    .option('-t, --temperature <t>', 'sampling temperature', temperatureOption(), 0.6)
    .option('--max-tokens <n>', 'token budget per trace', intOption('--max-tokens', 16), 1024)
    .option('--concurrency <n>', 'problems decoded together', intOption('--concurrency', 1), 4)
    .option('--dir <dir>', 'a demo folder other than the shipped one (model.gguf, probe/, conformal/)')
    .option('--json', 'print one JSON object (per problem: baseline and early-exit tokens and answers)')
    .action(async (args: DemoArgs) => {
      const shipped = requireShippedDemo(args.dir ? resolve(args.dir) : undefined);
      const model = LlamaModel.load(shipped.model);
      try {
        const policy = loadLynxPolicy(shipped.root, { rule: args.rule, delta: args.delta });
        const problems = demoBenchmark(args.benchmark, { limit: args.problems });
        if (problems.length === 0) throw new InvalidInputError(`no problems in '${args.benchmark}'`);
        const bar = args.json ? progressBar('demo', problems.length) : undefined;
        if (!args.json) {
          process.stdout.write(
            `${paint('bold', 'Lynx demo')}: ${problems.length} held-out problems, each solved twice with the same seed: thinking to the end, and with LYNX early exit (rule ${policy.rule.rule}, delta ${policy.rule.delta}).\n\n`,
          );
        }
        const { results, summary } = await compareWithBaseline({
          model,
          policy,
          problems,
          seed: args.seed,
          temperature: args.temperature,
          maxTokens: args.maxTokens,
          concurrency: args.concurrency,
          onProblem: (r) => (args.json ? bar!.tick() : process.stdout.write(problemLine(r) + '\n')),
        });
        bar?.stop();
        if (args.json) {
          process.stdout.write(JSON.stringify({ model: shipped.model, summary, problems: results }) + '\n');
          return;
        }
        const p = (x: number) => `${(100 * x).toFixed(0)}%`;
        process.stdout.write(
          '\n' +
            paint('bold', `Baseline:   accuracy ${p(summary.baselineAccuracy)}, ${summary.baselineAvgTokens.toFixed(0)} tokens per problem\n`) +
            paint('bold', `Early exit: accuracy ${p(summary.earlyExitAccuracy)}, ${summary.earlyExitAvgTokens.toFixed(0)} tokens per problem`) +
            ` — ${p(summary.tokenSavings)} fewer tokens, exited early on ${p(summary.exitRate)} of problems; ` +
            `${summary.harmed} answer(s) lost, ${summary.helped} gained.\n` +
            paint('dim', `Try: lynx demo --delta 0.3 (exit more), --delta 0.02 (exit only when sure), --json; lynx run -m ${shipped.model} --probe ${shipped.root} -p "..."\n`),
        );
      } finally {
        model.dispose();
      }
    });

  registerDemoPipeline(demo);

  demo
    .command('train')
    .description('train the demo reasoner from random initialisation (writes <name>.gguf and <name>.loss.json)')
    .option('--recipe <name>', 'default (the shipped model), small, or small-split (the small model that offloads to the default one)', 'default')
    .option('-o, --out <dir>', 'output folder', '.')
    .option('--threads <n>', 'CPU threads', threadsOption(), 2)
    .option('--sequences <n>', 'training windows (512 tokens each), to shorten or lengthen the recipe', intOption('--sequences', 1))
    .option('--checkpoint-every <n>', 'save a weights-only checkpoint every n steps', intOption('--checkpoint-every', 0), 0)
    .option('--init-from <gguf>', 'continue from a trained demo model (a second stage) instead of a random initialisation')
    .option('--add-layers-after <list>', 'with --init-from: grow the model deeper, one new identity block after each listed layer (e.g. 1,3)')
    .option('--data-seed <n>', 'seed of the training traces (use a new one for a second stage)', intOption('--data-seed', 0))
    .option('--lr <x>', 'peak learning rate', floatOption('--lr', 0))
    .option('--trainer <path>', "graph (full gradients through ggml, the default) or llama-opt (llama.cpp's llama_opt_*, K/V frozen)")
    .action(async (args: { recipe: string; out: string; threads: number; sequences?: number; checkpointEvery: number; initFrom?: string; addLayersAfter?: string; dataSeed?: number; lr?: number; trainer?: string }) => {
      const base = DEMO_RECIPES[args.recipe as keyof typeof DEMO_RECIPES];
      if (!base) throw new InvalidInputError(`unknown recipe '${args.recipe}': use ${Object.keys(DEMO_RECIPES).join(' or ')}`);
      if (args.initFrom && !existsSync(args.initFrom)) throw new InvalidInputError(`--init-from: no file at ${args.initFrom}`);
      const recipe = recipeWith(base, {
        data: { ...(args.sequences ? { sequences: args.sequences } : {}), ...(args.dataSeed !== undefined ? { seed: args.dataSeed } : {}) },
        optim: args.lr !== undefined ? { lr: args.lr } : {},
        ...(args.trainer !== undefined ? { trainer: args.trainer as 'graph' | 'llama-opt' } : {}),
      });
      const t0 = Date.now();
      const r = await trainDemoModel({
        recipe,
        outDir: resolve(args.out),
        threads: args.threads,
        checkpointEvery: args.checkpointEvery,
        initFrom: args.initFrom ? resolve(args.initFrom) : undefined,
        addLayersAfter: args.addLayersAfter !== undefined ? layerList(args.addLayersAfter) : undefined,
        log: (line) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${line}\n`),
      });
      process.stdout.write(`${r.modelPath}\n${r.lossCurvePath}\n`);
    });

  demo
    .command('card')
    .description("measure a demo model on the 500 held-out problems and write its model card (card.md, loss-curve.svg, behaviour.json)")
    .requiredOption('-m, --model <path>', 'the trained GGUF')
    .requiredOption('--loss <file...>', "its <name>.loss.json; several for several stages, oldest first (FILE@STEP cuts a stage at the checkpoint the next one started from)")
    .option('-o, --out <dir>', 'folder for the card', '.')
    .option('--per-level <n>', 'problems per level', intOption('--per-level', 1), 100)
    .option('--max-tokens <n>', 'token budget per trace', intOption('--max-tokens', 16), 600)
    .option('-s, --seed <n>', 'sampling seed', intOption('--seed', 0), 0)
    .option('--exp <dir>', "a 'lynx demo experiment' folder of this model: its result tables go into the card")
    .option('--compose <dir>', 'an experiment folder of big/small composition runs with this (small) model: their tables go into the card')
    .action(async (args: { model: string; loss: string[]; out: string; perLevel: number; maxTokens: number; seed: number; exp?: string; compose?: string }) => {
      const stages = args.loss.map((spec) => {
        const m = /^(.*)@(\d+)$/.exec(spec);
        const file = m ? m[1]! : spec;
        const curve = JSON.parse(readFileSync(file, 'utf8')) as LossCurveFile;
        if (!Array.isArray(curve.steps) || !curve.recipe) throw new InvalidInputError(`${file} is not a demo loss curve file`);
        return { curve, upToStep: m ? Number(m[2]) : undefined };
      });
      const merged = stages.length > 1 || stages[0]!.upToStep !== undefined ? mergeStageCurves(stages) : undefined;
      const curve = merged?.curve ?? stages[0]!.curve;
      // A small model trained to offload (recipe small-split) is measured as it is prompted: with SplitReason's hint.
      const ops = curve.recipe.data.trace?.offload ?? [];
      const offload = ops.length > 0 ? { ops: ops.map((k) => OP_NAMES[k]), bigModel: 'lynx-demo' } : undefined;
      const model = LlamaModel.load(args.model);
      try {
        const bar = progressBar('rollouts', args.perLevel * 5);
        const behaviour = await measureBehaviour(model, {
          perLevel: args.perLevel,
          maxTokens: args.maxTokens,
          seed: args.seed,
          promptHint: offload ? OFFLOAD_HINT : undefined,
          onProgress: () => bar.tick(),
        });
        bar.stop();
        const extra = [merged?.table, args.exp ? experimentSection(args.exp) : undefined, args.compose ? composeSection(args.compose) : undefined].filter(Boolean).join('\n\n') || undefined;
        const card = writeModelCard(resolve(args.out), { modelFile: args.model, curve, behaviour, extra, stages: stages.length, offload });
        process.stdout.write(`${card}\n`);
        for (const r of behaviour.rows) {
          process.stdout.write(`level ${r.level}: accuracy ${(100 * r.accuracy).toFixed(1)}%, ${r.meanThinkingTokens.toFixed(0)} thinking tokens, ${(100 * r.meanShareAfterFirstCorrect).toFixed(1)}% after first correct, ${r.meanCues.toFixed(2)} cues\n`);
        }
      } finally {
        model.dispose();
      }
    });
}

const OP_NAMES = { add: 'addition', sub: 'subtraction', mul: 'multiplication', div: 'division' } as const;

/** The card's section on big/small composition, from an experiment folder's runs (docs/composition.md). */
function composeSection(exp: string): string {
  const tables = existsSync(exp) ? experimentMarkdown(exp) : '';
  if (!tables.includes('Big/small composition')) throw new InvalidInputError(`--compose: no big/small composition runs under ${exp} (lynx eval --small ...)`);
  return `## Big/small composition with lynx-demo (\`lynx eval --small\`)

This model as the small half, the shipped lynx-demo as the big one, on held-out test problems (BENCHMARKS.md has the
commands). Wall times are sums of per-problem times, one problem at a time.

${tables}`;
}

/** The card's section on LYNX and the peers, from an experiment folder's runs. */
function experimentSection(exp: string): string {
  const tables = existsSync(exp) ? experimentMarkdown(exp) : '';
  if (!tables.trim()) throw new InvalidInputError(`--exp: no evaluation runs found under ${exp} (run 'lynx demo experiment' first)`);
  return `## LYNX and the peer methods on this model (\`lynx demo experiment\`)

Probe trained on \`demo:probe\`, rules calibrated on \`demo:calib\`, evaluated on \`demo:test\` (disjoint arithmetic).
\`demo-sim\` is the simulated evaluation from the labelled test rollouts; \`demo\` the online runs of every method on the
same problems and seed.

${tables}`;
}

function registerDemoPipeline(demo: Command): void {
  demo
    .command('experiment')
    .description('the whole LYNX pipeline on a demo model: datasets, probe, calibration, simulated and online evaluation with the peer methods, report (resumable)')
    .option('-m, --model <path>', 'the demo model (default: the shipped one)')
    .option('-o, --out <dir>', 'experiment folder', 'experiments/demo')
    .option('--problems <n>', 'problems per held-out part (probe, calib, test; at most 500)', intOption('--problems', 5), 500)
    .option('--max-tokens <n>', 'token budget per trace', intOption('--max-tokens', 16), 640)
    .option('-s, --seed <n>', 'sampling seed', intOption('--seed', 0), 0)
    .option('--concurrency <n>', 'problems decoded together', intOption('--concurrency', 1), 8)
    .option('--skip-peers', 'only full rollouts, budgets and LYNX')
    .action(async (args: { model?: string; out: string; problems: number; maxTokens: number; seed: number; concurrency: number; skipPeers?: boolean }) => {
      const model = args.model ?? shippedDemo().model;
      if (!existsSync(model)) throw new InvalidInputError(`no model at ${model}: train one with 'lynx demo train' and pass it with -m`);
      const n = Math.min(500, args.problems);
      await runDemoExperiment({
        out: resolve(args.out),
        model: resolve(model),
        problems: { probe: n, calib: n, test: n },
        maxTokens: args.maxTokens,
        seed: args.seed,
        concurrency: args.concurrency,
        skipPeers: args.skipPeers,
      });
      process.stdout.write(`${join(resolve(args.out), 'report.html')}\n`);
    });

  demo
    .command('step-errors')
    .description("which arithmetic steps a demo model gets wrong: its sampled traces' steps checked by operation and result size (what marks the small model's <bigmodel> steps)")
    .requiredOption('-m, --model <path>', 'the demo GGUF')
    .option('--part <part>', 'held-out part: calib (default), probe or test', 'calib')
    .option('--per-level <n>', 'problems per level', intOption('--per-level', 1), 100)
    .option('--max-tokens <n>', 'token budget per trace', intOption('--max-tokens', 16), 600)
    .option('-s, --seed <n>', 'sampling seed', intOption('--seed', 0), 0)
    .option('--json', 'print the report as JSON')
    .action(async (args: { model: string; part: string; perLevel: number; maxTokens: number; seed: number; json?: boolean }) => {
      if (!['calib', 'probe', 'test'].includes(args.part)) throw new InvalidInputError(`--part must be calib, probe or test (got '${args.part}')`);
      const model = LlamaModel.load(args.model);
      try {
        const bar = progressBar('rollouts', args.perLevel * 5);
        const r = await measureStepErrors(model, { part: args.part as 'calib', perLevel: args.perLevel, maxTokens: args.maxTokens, seed: args.seed, onProgress: () => bar.tick() });
        bar.stop();
        process.stdout.write(args.json ? JSON.stringify(r, null, 2) + '\n' : `accuracy ${(100 * r.accuracy).toFixed(1)}% on ${r.problems} ${r.part} problems\n\n${stepErrorMarkdown(r)}\n`);
      } finally {
        model.dispose();
      }
    });

  demo
    .command('ship')
    .description("copy a demo model and an experiment's probe and calibrated rules into a demo folder (default: the package's models/lynx-demo), so 'lynx demo' uses them")
    .requiredOption('-m, --model <path>', 'the trained demo GGUF')
    .requiredOption('--exp <dir>', 'experiment folder with probe/ and conformal/')
    .option('--to <dir>', 'demo folder (default: the shipped one)')
    .action((args: { model: string; exp: string; to?: string }) => {
      const d = shippedDemo(args.to ? resolve(args.to) : undefined);
      for (const need of [args.model, join(args.exp, 'probe', 'probe.json'), join(args.exp, 'conformal')]) {
        if (!existsSync(need)) throw new InvalidInputError(`missing ${need}`);
      }
      mkdirSync(d.root, { recursive: true });
      if (resolve(args.model) !== resolve(d.model)) cpSync(args.model, d.model);
      cpSync(join(args.exp, 'probe'), d.probe, { recursive: true });
      cpSync(join(args.exp, 'conformal'), d.conformal, { recursive: true });
      process.stdout.write(`${d.root}\n`);
    });
}

function problemLine(r: DemoProblemResult): string {
  const mark = (ok: boolean) => (ok ? paint('green', '✓') : paint('red', '✗'));
  const exit = r.earlyExit.exit
    ? `exit at '${r.earlyExit.exit.cue}' #${r.earlyExit.exit.event} (p=${r.earlyExit.exit.score?.toFixed(2)})`
    : 'no exit';
  const level = r.level !== undefined ? `L${r.level} ` : '';
  return (
    `${level}${r.id.padEnd(14)} gold ${r.gold.padStart(4)} | full: ${String(r.baseline.answer ?? '—').padStart(4)} ${mark(r.baseline.correct)} ${String(r.baseline.tokens).padStart(4)} tok` +
    ` | early: ${String(r.earlyExit.answer ?? '—').padStart(4)} ${mark(r.earlyExit.correct)} ${String(r.earlyExit.tokens).padStart(4)} tok, ${exit}` +
    (r.tokensSaved > 0 ? paint('dim', `  (−${r.tokensSaved})`) : '')
  );
}

/** "1,3" -> [1, 3] (layer numbers for --add-layers-after). */
function layerList(text: string): number[] {
  const xs = text.split(',').map((x) => x.trim());
  if (xs.some((x) => !/^-?\d+$/.test(x))) throw new InvalidInputError(`--add-layers-after: expected layer numbers like 1,3 (got '${text}')`);
  return xs.map(Number);
}
