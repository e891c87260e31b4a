/**
 * Method-agnostic evaluation runner: resumable and shardable.
 *
 * The method supplies `solve(problem)`, which returns the generated text (and token counts, exit event, ...).
 * The runner extracts and scores the answer, appends one PredictionRecord per problem to predictions.jsonl
 * (fsync'd, so a kill -9 loses at most the problem in flight), skips problems already recorded when restarted,
 * and writes metrics.json and config.json when every problem of its shard is done.
 *
 * Sharding: with `shard: {index, count}`, problem k of the list belongs to shard k % count and is written to
 * `<run folder>/shard-<index>-of-<count>/`; `mergeShards` joins the shard folders into the run folder.
 */
import { existsSync, readFileSync, readdirSync, statSync, truncateSync, openSync, closeSync, readSync, fstatSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { InvalidInputError } from '../util/errors.js';
import { appendJsonl } from '../util/jsonl.js';
import { writeFileAtomic } from '../util/fs.js';
import { checkShard, inShard, type Shard } from '../util/shard.js';
import type { Problem } from '../tasks/problem.js';
import { scoreText, type Grading } from '../tasks/answer-equiv.js';
import type { SymbolicChecker } from '../tasks/symbolic.js';
import { computeMetrics } from './metrics.js';
import {
  CONFIG_FILE,
  METRICS_FILE,
  PREDICTIONS_FILE,
  readConfig,
  readPredictionsFile,
  shardDirName,
  writeConfig,
  writeMetrics,
  type CueEventRecord,
  type PredictionRecord,
  type RunConfig,
  type RunMetrics,
} from './records.js';
import type { TokenCounts } from '../reasoning/token-counts.js';

/** What a method returns for one problem; the runner adds identity, scoring and timing. */
export interface SolveOutput {
  /** the text the answer is extracted from (the answer after a forced exit, or the whole generation) */
  answerText: string;
  tokens: TokenCounts;
  /** null when the generation ran to its end */
  exit: PredictionRecord['exit'];
  /** the generated reasoning, for the trace viewer */
  text?: string;
  events?: CueEventRecord[];
  /** the full rollout of the same problem when the method has it: its text is scored like the answer */
  baseline?: { tokens: number; decoded?: number; answerText: string } | { tokens: number; decoded?: number; correct: boolean; extracted: string | null };
  /** measured by the runner when absent */
  wallMs?: number;
  extra?: Record<string, unknown>;
}

export type SolveFn = (problem: Problem, index: number) => Promise<SolveOutput>;

export interface RunOptions {
  problems: readonly Problem[];
  solve: SolveFn;
  /** the run folder, e.g. runDir(root, benchmark, method, setting) */
  dir: string;
  benchmark: string;
  method: string;
  setting: string;
  /** answer grading (recorded as `policy` in config.json); default 'zst' */
  grading?: Grading;
  shard?: Shard;
  /** problems solved at the same time (a batching engine can use more than 1); default 1 */
  concurrency?: number;
  /** recorded in config.json (model, seed, delta, ...) */
  config?: Record<string, unknown>;
  /** seed of the bootstrap interval; default 0 */
  seed?: number;
  checker?: SymbolicChecker;
  onProgress?: (done: number, total: number, record: PredictionRecord) => void;
}

export interface RunResult {
  dir: string;
  metrics: RunMetrics;
  predictions: PredictionRecord[];
  /** problems solved in this call (the rest were already recorded) */
  solved: number;
  skipped: number;
}

/** The problems of a shard, with their positions in the full list. */
export function shardProblems(problems: readonly Problem[], shard?: Shard): { problem: Problem; index: number }[] {
  checkShard(shard);
  return problems.map((problem, index) => ({ problem, index })).filter((x) => inShard(x.index, shard));
}

/**
 * Cut a torn last line (a writer killed in the middle of an append) so that new records start on a fresh line.
 * Returns true when something was cut.
 */
export function repairTornTail(path: string): boolean {
  if (!existsSync(path)) return false;
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return false;
    const last = Buffer.alloc(1);
    readSync(fd, last, 0, 1, size - 1);
    if (last[0] === 0x0a) return false;
  } finally {
    closeSync(fd);
  }
  const text = readFileSync(path);
  const cut = text.lastIndexOf(0x0a) + 1;
  truncateSync(path, cut);
  return true;
}

function runKey(c: Pick<RunConfig, 'benchmark' | 'method' | 'setting' | 'policy'>): string {
  return JSON.stringify([c.benchmark, c.method, c.setting, c.policy]);
}

/** Config keys that record a session, not the run's settings (a resumed run may differ in them). */
const SESSION_KEYS = new Set(['createdAt', 'completedAt', 'status', 'completed', 'lastSessionSec', 'problems']);

/**
 * The settings in which a run folder's config and this run's differ (keys both record; a model compared by its
 * resolved path): resuming with any other model, seed, budget, sampler or probe would mix records of two runs.
 */
export function configDifferences(old: Record<string, unknown>, now: Record<string, unknown>): string[] {
  const norm = (k: string, v: unknown) => (k === 'model' && typeof v === 'string' ? resolve(v) : stableJson(v));
  return Object.keys(now)
    .filter((k) => !SESSION_KEYS.has(k) && k in old && now[k] !== undefined)
    .filter((k) => norm(k, old[k]) !== norm(k, now[k]))
    .sort();
}

function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x)) ?? 'undefined';
}

const show = (v: unknown) => (typeof v === 'string' ? v : stableJson(v));

/** Run (or resume) an evaluation. */
export async function runEvaluation(opts: RunOptions): Promise<RunResult> {
  checkShard(opts.shard);
  const grading = opts.grading ?? 'zst';
  const sharded = opts.shard !== undefined && opts.shard.count > 1;
  const dir = sharded ? join(opts.dir, shardDirName(opts.shard!.index, opts.shard!.count)) : opts.dir;
  const predPath = join(dir, PREDICTIONS_FILE);
  const mine = shardProblems(opts.problems, opts.shard);
  const ids = new Set<string>();
  for (const { problem } of mine) {
    if (ids.has(problem.id)) throw new InvalidInputError(`problem id ${problem.id} appears twice; ids must be unique`);
    ids.add(problem.id);
  }

  const config: RunConfig = {
    ...opts.config,
    benchmark: opts.benchmark,
    method: opts.method,
    setting: opts.setting,
    policy: grading,
    problems: opts.problems.length,
    ...(sharded ? { shard: { index: opts.shard!.index, count: opts.shard!.count } } : {}),
  };
  let createdAt = new Date().toISOString();
  if (existsSync(join(dir, CONFIG_FILE))) {
    const old = readConfig(dir);
    if (runKey(old) !== runKey(config))
      throw new InvalidInputError(
        `${dir} holds another run (${old.benchmark}/${old.method}/${old.setting}, policy ${old.policy}); use another folder or delete it`,
      );
    const diff = configDifferences(old, config);
    if (diff.length > 0) {
      const lines = diff.map((k) => `${k} ${show(old[k])} there, ${show(config[k])} now`);
      throw new InvalidInputError(
        `${dir} holds a run built with other settings (${diff.join(', ')} ${diff.length === 1 ? 'differs' : 'differ'}): ${lines.join('; ')}; ` +
          'resume with the same options, or write into another folder (-o)',
      );
    }
    if (typeof old.createdAt === 'string') createdAt = old.createdAt;
  }
  writeConfig(dir, { ...config, createdAt, status: 'running' });

  repairTornTail(predPath);
  const existing = existsSync(predPath) ? readPredictionsFile(predPath) : [];
  const done = new Map(existing.filter((r) => ids.has(r.id)).map((r) => [r.id, r]));
  const todo = mine.filter(({ problem }) => !done.has(problem.id));
  const skipped = mine.length - todo.length;
  const started = performance.now();

  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < todo.length) {
      const { problem, index } = todo[next++]!;
      try {
        const t0 = performance.now();
        const out = await opts.solve(problem, index);
        const wallMs = out.wallMs ?? performance.now() - t0;
        const rec = await toRecord(problem, index, out, wallMs, opts, grading);
        appendJsonl(predPath, [rec]);
        done.set(rec.id, rec);
        opts.onProgress?.(done.size, mine.length, rec);
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 1) }, worker));
  if (failure !== undefined) throw failure;

  const predictions = orderRecords([...done.values()]);
  const metrics = computeMetrics(predictions, {
    method: opts.method,
    setting: opts.setting,
    benchmark: opts.benchmark,
    seed: opts.seed ?? 0,
    extra: { policy: grading },
  });
  writeMetrics(dir, metrics);
  writeConfig(dir, {
    ...config,
    createdAt,
    completedAt: new Date().toISOString(),
    status: 'complete',
    completed: predictions.length,
    lastSessionSec: (performance.now() - started) / 1000,
  });
  return { dir, metrics, predictions, solved: todo.length, skipped };
}

async function toRecord(
  problem: Problem,
  index: number,
  out: SolveOutput,
  wallMs: number,
  opts: RunOptions,
  grading: Grading,
): Promise<PredictionRecord> {
  const scoring = { grading, checker: opts.checker };
  const s = await scoreText(out.answerText, problem, scoring);
  const rec: PredictionRecord = {
    id: problem.id,
    index,
    benchmark: opts.benchmark,
    method: opts.method,
    setting: opts.setting,
    problem: problem.problem,
    gold: problem.gold,
    extracted: s.extracted,
    extraction: s.extraction,
    correct: s.correct,
    tokens: out.tokens,
    wallMs,
    exit: out.exit,
  };
  if (out.baseline) {
    if ('answerText' in out.baseline) {
      const b = await scoreText(out.baseline.answerText, problem, scoring);
      rec.baseline = { tokens: out.baseline.tokens, ...decodedField(out.baseline.decoded), correct: b.correct, extracted: b.extracted };
    } else rec.baseline = { tokens: out.baseline.tokens, ...decodedField(out.baseline.decoded), correct: out.baseline.correct, extracted: out.baseline.extracted };
  }
  if (out.events) rec.events = out.events;
  if (out.text !== undefined) rec.text = out.text;
  const extra = { ...out.extra, ...(s.timedOut ? { equivalenceTimedOut: true } : {}) };
  if (Object.keys(extra).length > 0) rec.extra = extra;
  return rec;
}

const decodedField = (d: number | undefined) => (d === undefined ? {} : { decoded: d });

/** Records in problem order (by index, then id), so metrics do not depend on completion order. */
export function orderRecords(recs: PredictionRecord[]): PredictionRecord[] {
  return recs.sort((a, b) => (a.index ?? Infinity) - (b.index ?? Infinity) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Join the shard folders `shard-<i>-of-<n>` under a run folder into the run folder itself: predictions in
 * problem order, metrics recomputed over all of them, config without the shard. Every shard must be complete.
 */
export function mergeShards(dir: string, opts: { seed?: number } = {}): RunResult {
  const shardDirs = existsSync(dir)
    ? readdirSync(dir).filter((n) => /^shard-\d+-of-\d+$/.test(n) && statSync(join(dir, n)).isDirectory())
    : [];
  if (shardDirs.length === 0) throw new InvalidInputError(`no shard folders (shard-<i>-of-<n>) in ${dir}`);
  const counts = new Set(shardDirs.map((n) => Number(/-of-(\d+)$/.exec(n)![1])));
  if (counts.size !== 1) throw new InvalidInputError(`${dir} mixes shard counts (${[...counts].join(', ')}); merge one sharding`);
  const count = [...counts][0]!;
  const missing: string[] = [];
  for (let i = 0; i < count; i++) {
    const d = join(dir, shardDirName(i, count));
    if (!existsSync(join(d, METRICS_FILE))) missing.push(shardDirName(i, count));
  }
  if (missing.length > 0) throw new InvalidInputError(`cannot merge ${dir}: unfinished or missing shards ${missing.join(', ')}`);

  const configs = Array.from({ length: count }, (_, i) => readConfig(join(dir, shardDirName(i, count))));
  const key = runKey(configs[0]!);
  if (configs.some((c) => runKey(c) !== key)) throw new InvalidInputError(`shards in ${dir} belong to different runs`);
  const byId = new Map<string, PredictionRecord>();
  for (let i = 0; i < count; i++) {
    for (const r of readPredictionsFile(join(dir, shardDirName(i, count), PREDICTIONS_FILE))) {
      if (byId.has(r.id)) throw new InvalidInputError(`problem ${r.id} appears in more than one shard of ${dir}`);
      byId.set(r.id, r);
    }
  }
  const predictions = orderRecords([...byId.values()]);
  const first = configs[0]!;
  const rest: RunConfig = { ...first };
  for (const k of ['shard', 'status', 'completed', 'completedAt', 'lastSessionSec']) delete rest[k];
  writeFileAtomic(join(dir, PREDICTIONS_FILE), predictions.map((r) => JSON.stringify(r)).join('\n') + (predictions.length ? '\n' : ''));
  const metrics = computeMetrics(predictions, {
    method: first.method,
    setting: first.setting,
    benchmark: first.benchmark,
    seed: opts.seed ?? 0,
    extra: { policy: first.policy },
  });
  writeMetrics(dir, metrics);
  writeConfig(dir, {
    ...rest,
    status: 'complete',
    completed: predictions.length,
    completedAt: new Date().toISOString(),
    mergedShards: count,
  });
  return { dir, metrics, predictions, solved: 0, skipped: predictions.length };
}
