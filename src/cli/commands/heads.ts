/** `lynx heads train|calibrate|draft-model|compare`: early-exit heads and the decoding they allow (src/pipeline/heads.ts). */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { compareDecodingStep, formatComparison } from '../../pipeline/compare-decoding.js';
import { defaultHeadsDir } from '../../pipeline/decoding.js';
import { calibrateHeadsStep, draftModelStep, trainHeadsStep, type HeadTextSource } from '../../pipeline/heads.js';
import { resolveModelPath } from '../../pipeline/model.js';
import { COVERAGE_RULES, type CoverageRule } from '../../reasoning/calibration/coverage.js';
import { InvalidInputError } from '../../util/errors.js';
import { problemSelectionOptions, selectionOf } from '../benchmark-arg.js';
import { floatOption, intOption, listOption } from '../options.js';

interface DataArgs {
  data?: string;
  benchmark?: string;
  dataDir?: string;
  split?: string;
  limit?: number;
  limitPerSubset?: number;
  subsetOffset?: number;
  subsets?: string[];
  generate: number;
  maxPositions?: number;
  threads?: number;
  seed: number;
}

const numbers = (xs: string[] | undefined, name: string) =>
  xs?.map((x) => {
    const n = Number(x);
    if (!Number.isFinite(n)) throw new InvalidInputError(`${name}: '${x}' is not a number`);
    return n;
  });

function dataOptions(c: Command, benchmark: string): Command {
  return problemSelectionOptions(
    c
      .option('--data <file>', 'text: a .txt file (texts separated by blank lines) or .jsonl (a "text" field per line)')
      .option('-b, --benchmark <name>', `problems the model continues itself (default ${benchmark})`)
      .option('--generate <n>', 'tokens the model writes after each problem', intOption('--generate', 1), 256)
      .option('--max-positions <n>', 'token positions at most', intOption('--max-positions', 1))
      .option('--threads <n>', 'CPU threads', intOption('--threads', 1))
      .option('-s, --seed <n>', 'seed (continuations, shuffling)', intOption('--seed', 0), 0),
  );
}

function sourceOf(a: DataArgs, benchmark: string): HeadTextSource {
  if (a.data && a.benchmark) throw new InvalidInputError('--data and --benchmark exclude each other');
  return a.data ? { file: a.data } : { benchmark: a.benchmark ?? benchmark, selection: selectionOf(a), generate: a.generate, seed: a.seed };
}

const log = (line: string) => process.stderr.write(`${line}\n`);

export function registerHeads(program: Command): void {
  const heads = program.command('heads').description('early-exit heads: train, calibrate, export a draft model, compare decoding modes');

  interface TrainArgs extends DataArgs {
    model: string;
    out?: string;
    layers?: string[];
    count: number;
    init: string;
    topK?: number;
    cache?: string;
    online?: boolean;
    batch: number;
    epochs: number;
    lr: number;
    heldOut: number;
    f16?: boolean;
  }
  dataOptions(
    heads
      .command('train')
      .description('distil heads on intermediate blocks from the full model (KL at temperature 1); writes DIR/heads.json and heads.safetensors')
      .requiredOption('-m, --model <path>', 'GGUF file or Hugging Face folder')
      .option('-o, --out <dir>', 'heads folder (default heads/ beside the model)')
      .option('--layers <list>', 'blocks with a head (default: --count evenly spaced)', listOption)
      .option('--count <n>', 'heads when --layers is not given', intOption('--count', 1), 3)
      .option('--init <how>', "output (start from the model's output matrix) or zero", 'output')
      .option('--top-k <k>', "keep the teacher's top k tokens (default: all up to 4096 tokens, else 64)", intOption('--top-k', 1))
      .option('--cache <file>', 'hidden-state cache (.safetensors): read when it exists, else written')
      .option('--online', 'stream the training data from the engine chunk by chunk (no cache; memory for one chunk)')
      .option('--batch <n>', 'positions per optimizer step', intOption('--batch', 1), 32)
      .option('--epochs <n>', 'passes over the data', intOption('--epochs', 1), 3)
      .option('--lr <x>', 'AdamW learning rate', floatOption('--lr', 0), 3e-3)
      .option('--held-out <f>', 'share of the texts held out for the metrics', floatOption('--held-out', 0, 1), 0.1)
      .option('--f16', 'store the matrices as F16 (half the file)'),
    'demo:probe',
  ).action(async (a: TrainArgs) => {
    const model = await resolveModelPath(a.model);
    const out = a.out ?? defaultHeadsDir(model);
    if (a.init !== 'output' && a.init !== 'zero') throw new InvalidInputError(`--init must be output or zero, got '${a.init}'`);
    const r = await trainHeadsStep({
      model,
      out,
      layers: numbers(a.layers, '--layers'),
      count: a.count,
      init: a.init,
      data: sourceOf(a, 'demo:probe'),
      maxRows: a.limit,
      maxPositions: a.maxPositions,
      heldOut: a.heldOut,
      topK: a.topK,
      cache: a.cache,
      online: a.online,
      batch: a.batch,
      epochs: a.epochs,
      lr: a.lr,
      threads: a.threads,
      seed: a.seed,
      dtype: a.f16 ? 'F16' : 'F32',
      log,
    });
    for (const m of r.metrics) {
      process.stdout.write(
        `head ${m.layer}: agreement ${(100 * m.agreementBefore).toFixed(1)}% -> ${(100 * m.agreementAfter).toFixed(1)}%, KL ${m.klBefore.toFixed(3)} -> ${m.klAfter.toFixed(3)} (${m.tokens} held-out positions)\n`,
      );
    }
    process.stdout.write(`wrote ${r.dir}/heads.json, heads.safetensors\n`);
  });

  interface CalibrateArgs extends DataArgs {
    model: string;
    heads?: string;
    levels?: string[];
    rule: string;
    alpha: number;
    check: number;
  }
  dataOptions(
    heads
      .command('calibrate')
      .description('per accuracy level, the largest entropy threshold at which each head agrees with the full model at that rate; writes DIR/calibration.json')
      .requiredOption('-m, --model <path>', 'GGUF file or Hugging Face folder')
      .option('--heads <dir>', 'heads folder (default heads/ beside the model)')
      .option('--levels <list>', 'accuracy levels (default 0.6,0.65,...,0.95,0.99)', listOption)
      .option('--rule <r>', "ltt (default: held-out agreement meets the level with probability 1 - alpha) or max-coverage (BranchyLLM's rule, in-sample)", 'ltt')
      .option('--alpha <a>', 'ltt: error probability', floatOption('--alpha', 0, 1), 0.05)
      .option('--check <f>', 'share of the texts kept apart to check the thresholds (0: none)', floatOption('--check', 0, 0.9), 0.5),
    'demo:calib',
  ).action(async (a: CalibrateArgs) => {
    const model = await resolveModelPath(a.model);
    if (!(COVERAGE_RULES as readonly string[]).includes(a.rule)) throw new InvalidInputError(`--rule must be ${COVERAGE_RULES.join(' or ')}, got '${a.rule}'`);
    const dir = a.heads ?? defaultHeadsDir(model);
    const { calibration } = await calibrateHeadsStep({
      model,
      heads: dir,
      data: sourceOf(a, 'demo:calib'),
      maxRows: a.limit,
      maxPositions: a.maxPositions,
      levels: numbers(a.levels, '--levels'),
      rule: a.rule as CoverageRule,
      alpha: a.alpha,
      check: a.check,
      threads: a.threads,
      log,
    });
    const pct = (x: number | null | undefined) => (x === null || x === undefined ? '  —  ' : `${(100 * x).toFixed(1)}%`);
    process.stdout.write(`rule ${calibration.rule}, ${calibration.positions} positions${calibration.checkPositions ? `, checked on ${calibration.checkPositions}` : ''}\n`);
    for (const h of calibration.heads) {
      process.stdout.write(`head ${h.layer}: agreement ${pct(h.agreement)}, mean entropy ${h.meanEntropy.toFixed(3)}\n`);
      for (const l of h.levels) {
        process.stdout.write(
          `  level ${l.level.toFixed(2)}: threshold ${l.threshold === null ? 'never' : l.threshold.toFixed(4)}, coverage ${pct(l.coverage)}, agreement ${pct(l.agreement)}` +
            (l.check ? `; check: coverage ${pct(l.check.coverage)}, agreement ${pct(l.check.agreement)}` : '') +
            '\n',
        );
      }
    }
    process.stdout.write(`wrote ${dir}/calibration.json\n`);
  });

  heads
    .command('draft-model')
    .description("write a draft GGUF: the model's first K+1 blocks with the head of block K as output (for GPUs, or where partial-depth decodes do not stop early)")
    .requiredOption('-m, --model <path>', 'GGUF file')
    .requiredOption('--layer <k>', 'the head (block) to export', intOption('--layer', 0))
    .requiredOption('-o, --out <file>', 'GGUF file to write')
    .option('--heads <dir>', 'heads folder (default heads/ beside the model)')
    .action(async (a: { model: string; layer: number; out: string; heads?: string }) => {
      const model = await resolveModelPath(a.model);
      const out = draftModelStep({ model, heads: a.heads ?? defaultHeadsDir(model), layer: a.layer, out: a.out });
      process.stdout.write(`wrote ${out}\n`);
    });

  interface CompareArgs extends DataArgs {
    model: string;
    heads?: string;
    draftModel?: string;
    draftMax: string[];
    levels?: string[];
    layers?: string[];
    draftVocab?: string[];
    maxTokens: number;
    temperature: number;
    topP: number;
    json?: boolean;
  }
  dataOptions(
    heads
      .command('compare')
      .description('run every decoding mode on one prompt set: full, self-speculative per head and draft length, layer exit per level, a draft model; speed against full in the same run and agreement with it')
      .requiredOption('-m, --model <path>', 'GGUF file or Hugging Face folder')
      .option('--heads <dir>', 'heads folder (default heads/ beside the model)')
      .option('--draft-model <path>', 'also speculative decoding with this draft GGUF')
      .option('--draft-max <list>', 'draft lengths', listOption, ['5'])
      .option('--levels <list>', 'layer-exit accuracy levels (default 0.9)', listOption)
      .option('--layers <list>', 'heads to draft with (default all)', listOption)
      .option('--draft-vocab <list>', 'also self-drafting from these draft vocabularies (the N tokens the model emits most)', listOption)
      .option('-n, --max-tokens <n>', 'tokens per prompt', intOption('--max-tokens', 1), 128)
      .option('-t, --temperature <t>', '0 = greedy', floatOption('--temperature', 0), 0)
      .option('--top-p <p>', 'nucleus sampling', floatOption('--top-p', 0, 1), 1)
      .option('--json', 'print the comparison as JSON'),
    'demo:test',
  ).action(async (a: CompareArgs) => {
    const model = await resolveModelPath(a.model);
    const dir = a.heads ?? defaultHeadsDir(model);
    const r = await compareDecodingStep({
      model,
      heads: existsSync(dir) ? dir : undefined,
      draftModel: a.draftModel,
      prompts: sourceOf({ ...a, generate: 0 }, 'demo:test'),
      limit: a.limit ?? 8,
      maxTokens: a.maxTokens,
      sampler: { temperature: a.temperature, topP: a.topP, seed: a.seed },
      draftMax: numbers(a.draftMax, '--draft-max')!,
      levels: numbers(a.levels, '--levels'),
      layers: numbers(a.layers, '--layers'),
      draftVocab: numbers(a.draftVocab, '--draft-vocab'),
      threads: a.threads,
      log,
    });
    process.stdout.write(a.json ? JSON.stringify(r, null, 2) + '\n' : formatComparison(r));
  });
}
