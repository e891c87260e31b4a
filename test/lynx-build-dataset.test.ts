/**
 * `lynx build-dataset` and `lynx merge` end to end on a tiny random model through the real engine: a build killed with
 * SIGKILL and resumed, a build aborted and resumed, and a sharded build merged all give the same bytes as one
 * uninterrupted build; resuming with other options, or from a damaged folder, fails with a clear error; the metadata
 * is consistent.
 *
 * The tiny model writes random bytes, so it rarely says "wait"; the cue list here is short words its byte-level
 * vocabulary produces often (`he`, `the`, `in`, single letters), which gives real cue events (captured in the decode
 * step) next to LYNX's synthetic 70% events of rollouts without one.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli/main.js';
import { LlamaModel } from '../src/engine/index.js';
import { demoBenchmark } from '../src/tasks/demo/benchmark.js';
import { answersEquivalentSync } from '../src/tasks/answer-equiv.js';
import { exitCueText } from '../src/reasoning/forced-exit.js';
import { buildDataset, buildDatasetToDir, type RolloutRecord } from '../src/reasoning/lynx/dataset/builder.js';
import { findCueEvents } from '../src/reasoning/lynx/cues.js';
import { concatFeatures, tapLayersFor } from '../src/reasoning/lynx/features.js';
import { problemPromptTokens } from '../src/reasoning/prompt-tokens.js';
import { LlamaContext } from '../src/engine/index.js';
import type { Problem } from '../src/tasks/problem.js';
import { MANIFEST_FILE, readDataset } from '../src/reasoning/lynx/dataset/store.js';
import { buildTinyGguf } from './helpers/engine-models.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CUES = ['he', 'h', 'o', 't', 'in', 'the', 'a'];
const LIMIT = 12;
const ROLLOUTS = 2;

let tmp: string;
let modelPath: string;
let ref: string;
let n = 0;
const fresh = () => join(tmp, `d${n++}`);

/** The build every test compares with; `extra` adds or overrides options. */
const buildArgs = (out: string, ...extra: string[]) => [
  'build-dataset',
  '-m',
  modelPath,
  '-b',
  'demo:probe',
  '--limit',
  String(LIMIT),
  '--rollouts',
  String(ROLLOUTS),
  '--max-tokens',
  '48',
  '--answer-max-tokens',
  '8',
  '--cues',
  CUES.join(','),
  '--threads',
  '1',
  '--flush-every',
  '1',
  '-o',
  out,
  ...extra,
];

/** Run the CLI in this process; stdout and stderr captured. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
  try {
    return { code: await main(args), out: out.join(''), err: err.join('') };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

function files(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).sort()) out[f] = createHash('sha256').update(readFileSync(join(dir, f))).digest('hex');
  return out;
}

const manifest = (dir: string) => JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8'));

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'lynx-build-dataset-'));
  modelPath = buildTinyGguf(join(tmp, 'tiny-qwen2.gguf'), { arch: 'qwen2', type: 'f32' });
  ref = join(tmp, 'ref');
  const r = await cli(buildArgs(ref, '--concurrency', '2'));
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/^\d+ rows, 24 rollouts \(24 built, 0 already done\), label-1 rate [\d.]+%, [\d.]+ events per rollout, \d+ synthetic events, full-rollout accuracy [\d.]+%, [\d.]+ s -> /);
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('lynx build-dataset', () => {
  it('writes consistent metadata, features and manifest info', () => {
    const ds = readDataset(ref);
    const m = manifest(ref);
    expect(m.complete).toBe(true);
    expect(m.units).toHaveLength(LIMIT * ROLLOUTS);
    expect(readdirSync(ref).sort()).toEqual(['data-00000.jsonl', 'data-00000.safetensors', MANIFEST_FILE]);
    // What the probe trainer and the online pipeline read from the manifest.
    expect(m.info).toMatchObject({
      benchmark: 'demo:probe',
      model: { file: 'tiny-qwen2.gguf', architecture: 'qwen2', nLayer: 4, nEmbd: 64 },
      hiddenStateLayers: [1, 2, 3, 4],
      nFeatures: 256,
      cues: CUES,
      exitCue: 'paper',
      seed: 0,
      sampler: { temperature: 0.6, topP: 0.95 },
      maxTokens: 48,
      answerMaxTokens: 8,
      rolloutsPerProblem: ROLLOUTS,
      numerics: 'exact',
      shard: null,
    });
    expect(ds.nFeatures).toBe(256);

    const problems = demoBenchmark('demo:probe', { limit: LIMIT });
    const model = LlamaModel.load(modelPath);
    const cueLen = model.tokenize(exitCueText('paper'), { addSpecial: false, parseSpecial: true }).length;
    model.dispose();
    const byUnit = new Map<string, typeof ds.meta>();
    ds.meta.forEach((e, i) => {
      expect(e.unit).toBe(`${e.problemId}#${e.rollout}`);
      expect(problems[e.problemIndex]!.id).toBe(e.problemId);
      expect(e.gold).toBe(problems[e.problemIndex]!.gold);
      expect(e.tokensSoFar).toBe(e.position + 1);
      expect([0, 1]).toContain(e.label);
      // The label is the forced exit's answer judged against the gold answer.
      expect(e.label === 1).toBe(answersEquivalentSync(e.exitAnswer, e.gold!, { grading: 'zst' }).equivalent);
      expect(e.synthetic).toBe(e.cue === 'synthetic');
      if (!e.synthetic) expect(CUES).toContain(e.cue);
      expect(typeof e.fullCorrect).toBe('boolean');
      expect(e.exitCueTokens).toBe(cueLen);
      expect(e.exitAnswerTokens).toBeGreaterThan(0);
      expect(e.exitAnswerTokens).toBeLessThanOrEqual(8);
      expect(e.position).toBeLessThan(e.fullReasoningTokens!);
      expect(e.fullReasoningTokens).toBeLessThanOrEqual(48);
      expect(e.fullTokens).toBeGreaterThanOrEqual(e.fullReasoningTokens!);
      expect(e.charOffset).toBeGreaterThanOrEqual(0);
      const row = ds.features.subarray(i * 256, (i + 1) * 256);
      expect(row.every((x) => Number.isFinite(x))).toBe(true);
      expect(row.some((x) => x !== 0)).toBe(true);
      const list = byUnit.get(e.unit!) ?? [];
      list.push(e);
      byUnit.set(e.unit!, list);
    });
    for (const events of byUnit.values()) {
      events.forEach((e, k) => {
        expect(e.eventIndex).toBe(k);
        if (k > 0) expect(e.position).toBeGreaterThan(events[k - 1]!.position);
        for (const key of ['fullAnswer', 'fullCorrect', 'fullTokens', 'fullReasoningTokens'] as const) expect(e[key]).toEqual(events[0]![key]);
      });
      // A synthetic event stands alone: only a rollout with no cue event gets one.
      if (events.some((e) => e.synthetic)) expect(events).toHaveLength(1);
    }
    // Both kinds occur, so both capture paths (in the decode step, re-decoded for the synthetic event) are exercised.
    expect(ds.meta.filter((e) => !e.synthetic).length).toBeGreaterThan(5);
    expect(ds.meta.filter((e) => e.synthetic).length).toBeGreaterThan(0);
    // Rows of different events differ (each is its own token's hidden state).
    expect(Buffer.from(ds.features.buffer, 0, 1024).equals(Buffer.from(ds.features.buffer, 1024, 1024))).toBe(false);
  });

  it('killed with SIGKILL mid-build and resumed (other concurrency), it ends with the same bytes', async () => {
    const dir = fresh();
    const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...buildArgs(dir, '--concurrency', '2')], {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr!.on('data', (b) => (stderr += b));
    const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
    const unitsOnDisk = () => {
      try {
        return existsSync(join(dir, MANIFEST_FILE)) ? (manifest(dir).units as string[]).length : 0;
      } catch {
        return 0;
      }
    };
    const t0 = Date.now();
    while (unitsOnDisk() < 3 && proc.exitCode === null && Date.now() - t0 < 90_000) await new Promise((r) => setTimeout(r, 20));
    proc.kill('SIGKILL');
    await exited;
    expect(stderr).not.toMatch(/error/i);
    const killed = manifest(dir);
    expect(killed.complete).toBe(false); // really interrupted
    expect(killed.units.length).toBeGreaterThanOrEqual(3);
    expect(killed.units.length).toBeLessThan(LIMIT * ROLLOUTS);
    expect(readdirSync(dir).some((f) => f.startsWith('chunk-'))).toBe(true);

    const r = await cli(buildArgs(dir, '--concurrency', '3'));
    expect(r.code).toBe(0);
    expect(r.out).toContain(`(${LIMIT * ROLLOUTS - killed.units.length} built, ${killed.units.length} already done)`);
    expect(files(dir)).toEqual(files(ref));
    // Running it again on the finished folder changes nothing.
    const again = await cli(buildArgs(dir));
    expect(again.out).toContain(`(0 built, ${LIMIT * ROLLOUTS} already done)`);
    expect(files(dir)).toEqual(files(ref));
  });

  it('Ctrl-C (SIGINT) writes the finished rollouts before leaving; the same command then completes the build', async () => {
    // A longer build than the reference, with no chunk written before the interruption (--flush-every 1000).
    const args = (out: string) => [...buildArgs(out, '--limit', '40', '--max-tokens', '32', '--flush-every', '1000')];
    const dir = fresh();
    const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args(dir)], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (b) => (stderr += b));
    const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
    const t0 = Date.now();
    // The manifest appears once the signal handler is installed; give the build a second to finish some rollouts.
    while (!existsSync(join(dir, MANIFEST_FILE)) && proc.exitCode === null && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 1000));
    proc.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toContain('interrupted (SIGINT); finished rollouts are saved in');
    const m = manifest(dir);
    expect(m.complete).toBe(false);
    expect(m.units.length).toBeGreaterThan(0); // written by the interruption: no chunk was due
    expect(m.units.length).toBeLessThan(80);
    const r = await cli(args(dir));
    expect(r.out).toContain(`(${80 - m.units.length} built, ${m.units.length} already done)`);
    const once = fresh();
    expect((await cli(args(once))).code).toBe(0);
    expect(files(dir)).toEqual(files(once));
  });

  it('aborted (finished rollouts written at once) and resumed, it ends with the same bytes', async () => {
    const dir = fresh();
    const model = LlamaModel.load(modelPath);
    try {
      const problems = demoBenchmark('demo:probe', { limit: LIMIT });
      const opts = {
        model,
        problems,
        outDir: dir,
        info: { benchmark: 'demo:probe', selection: manifest(ref).info.selection }, // what the CLI records
        rolloutsPerProblem: ROLLOUTS,
        cues: CUES,
        maxTokens: 48,
        answerMaxTokens: 8,
        sampler: { temperature: 0.6, topP: 0.95 },
        threads: 1,
        concurrency: 2,
        chunkUnits: 1000, // nothing is written before the abort
      };
      const controller = new AbortController();
      let seen = 0;
      let atAbort = -1;
      await expect(
        buildDatasetToDir({
          ...opts,
          signal: controller.signal,
          onProgress: (p) => {
            seen = p.done;
            if (p.done === 5) {
              controller.abort(new Error('stop here'));
              atAbort = manifest(dir).units.length; // written synchronously by the abort (the CLI exits right after)
            }
          },
        }),
      ).rejects.toThrow('stop here');
      const m = manifest(dir);
      expect(m.complete).toBe(false);
      // The five finished at the abort were flushed by it; at most the rollouts then in flight were added after.
      expect(atAbort).toBe(5);
      expect(m.units.length).toBeGreaterThanOrEqual(5);
      expect(m.units.length).toBe(seen);
      expect(m.units.length).toBeLessThan(LIMIT * ROLLOUTS);
      const r = await buildDatasetToDir({ ...opts, concurrency: 1 });
      expect(r.skipped).toBe(m.units.length);
      expect(r.rollouts).toBe(LIMIT * ROLLOUTS - m.units.length);
      expect(files(dir)).toEqual(files(ref));
    } finally {
      model.dispose();
    }
  });

  it('--batched (one shared context) agrees with the exact build to float noise on the rollouts it reproduces', async () => {
    const dir = fresh();
    const r = await cli(buildArgs(dir, '--batched', '--concurrency', '4'));
    expect(r.code).toBe(0);
    expect(manifest(dir).info.numerics).toBe('batched');
    const a = readDataset(dir);
    const b = readDataset(ref);
    const rowsOf = (ds: typeof a) => {
      const m = new Map<string, number[]>();
      ds.meta.forEach((e, i) => m.set(e.unit!, [...(m.get(e.unit!) ?? []), i]));
      return m;
    };
    const ra = rowsOf(a);
    const rb = rowsOf(b);
    let compared = 0;
    for (const [unit, ia] of ra) {
      const ib = rb.get(unit);
      // A sampled token can flip under batch noise; compare the rollouts whose events came out the same.
      if (!ib || JSON.stringify(ia.map((i) => a.meta[i])) !== JSON.stringify(ib.map((i) => b.meta[i]))) continue;
      ia.forEach((i, k) => {
        const x = a.features.subarray(i * 256, (i + 1) * 256);
        const y = b.features.subarray(ib[k]! * 256, (ib[k]! + 1) * 256);
        for (let j = 0; j < 256; j++) expect(Math.abs(x[j]! - y[j]!)).toBeLessThan(1e-4);
      });
      compared++;
    }
    expect(compared).toBeGreaterThan(LIMIT);
  });
});

describe('lynx merge', () => {
  it('--shard 0/2 and 1/2, merged, equal the unsharded build byte for byte', async () => {
    const s0 = fresh();
    const s1 = fresh();
    expect((await cli(buildArgs(s0, '--shard', '0/2'))).code).toBe(0);
    expect((await cli(buildArgs(s1, '--shard', '1/2', '--concurrency', '1'))).code).toBe(0);
    expect(manifest(s0).info.shard).toBe('0/2');
    // Shards split the problems (j mod 2), all rollouts of a problem in one shard.
    const ids0 = new Set((manifest(s0).units as string[]).map((u) => u.split('#')[0]));
    const ids1 = new Set((manifest(s1).units as string[]).map((u) => u.split('#')[0]));
    expect(ids0.size).toBe(LIMIT / 2);
    expect([...ids0].some((id) => ids1.has(id))).toBe(false);
    const out = fresh();
    const r = await cli(['merge', '-o', out, s1, s0]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/rollouts from shards 1\/2, 0\/2 -> /);
    expect(files(out)).toEqual(files(ref));
    const a = readDataset(out);
    const b = readDataset(ref);
    expect(a.meta).toEqual(b.meta);
    expect(a.features).toEqual(b.features);
  });

  it('refuses shards of different builds, incomplete sets and unfinished shards, naming the problem', async () => {
    const s0 = fresh();
    const s1 = fresh();
    expect((await cli(buildArgs(s0, '--shard', '0/2'))).code).toBe(0);
    expect((await cli(buildArgs(s1, '--shard', '1/2', '--seed', '5'))).code).toBe(0);
    const other = await cli(['merge', '-o', fresh(), s0, s1]);
    expect(other.code).toBe(1);
    expect(other.err).toMatch(/not shards of one build \(seed differs\)/);
    expect(other.err).toContain('seed: 0 in');
    const missing = await cli(['merge', '-o', fresh(), s0]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('shard 1/2 missing');
    const twice = await cli(['merge', '-o', fresh(), s0, s0]);
    expect(twice.code).toBe(1);
    expect(twice.err).toContain('given twice');
    const unsharded = await cli(['merge', '-o', fresh(), ref]);
    expect(unsharded.code).toBe(1);
    expect(unsharded.err).toContain('is not a shard');
    const m = manifest(s0);
    writeFileSync(join(s0, MANIFEST_FILE), JSON.stringify({ ...m, complete: false }));
    const unfinished = await cli(['merge', '-o', fresh(), s0, s1]);
    expect(unfinished.code).toBe(1);
    expect(unfinished.err).toContain('unfinished');
  });
});

describe('resume checks', () => {
  it('resuming with other options fails and names each field that differs', async () => {
    const dir = fresh();
    cpSync(ref, dir, { recursive: true });
    const seed = await cli(buildArgs(dir, '--seed', '1'));
    expect(seed.code).toBe(1);
    expect(seed.err).toMatch(/built with other settings \(seed differs\)/);
    expect(seed.err).toContain('seed: 0 there, 1 now');
    const layers = await cli(buildArgs(dir, '--layers', '2,4'));
    expect(layers.code).toBe(1);
    expect(layers.err).toMatch(/\(hiddenStateLayers, nFeatures differ\)/);
    const cues = await cli(buildArgs(dir, '--cues', 'default', '--max-tokens', '40'));
    expect(cues.err).toMatch(/\(cues, maxTokens differ\)/);
    const limit = await cli(buildArgs(dir, '--limit', '6'));
    expect(limit.err).toMatch(/\(problems, selection differ\)/);
    const batched = await cli(buildArgs(dir, '--batched'));
    expect(batched.err).toMatch(/\(numerics differs\)/);
    // Nothing was touched.
    expect(files(dir)).toEqual(files(ref));
  });

  it('a damaged manifest or chunk gives a clear error, not a crash', async () => {
    const base = fresh();
    const resume = (dir: string) =>
      cli(['build-dataset', '-m', modelPath, '-b', 'demo:probe', '--limit', '3', '--max-tokens', '24', '--answer-max-tokens', '4', '--cues', CUES.join(','), '--threads', '1', '-o', dir]);
    expect((await resume(base)).code).toBe(0);
    const m = manifest(base);
    expect(m.rows).toBeGreaterThan(0);
    expect((await resume(base)).code).toBe(0); // intact, it resumes (nothing left to do)

    const damage = async (how: (dir: string) => void, message: RegExp) => {
      const dir = fresh();
      cpSync(base, dir, { recursive: true });
      how(dir);
      const r = await resume(dir);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(message);
      expect(r.err).not.toMatch(/internal error/);
    };
    const text = readFileSync(join(base, MANIFEST_FILE), 'utf8');
    await damage((d) => writeFileSync(join(d, MANIFEST_FILE), text.slice(0, text.length >> 1)), /manifest\.json is not valid JSON/);
    await damage((d) => writeFileSync(join(d, MANIFEST_FILE), JSON.stringify({ ...m, units: undefined })), /damaged: 'units' should be a list of strings/);
    await damage((d) => writeFileSync(join(d, MANIFEST_FILE), JSON.stringify({ ...m, rows: m.rows + 1 })), /damaged: 'rows'/);
    await damage((d) => writeFileSync(join(d, MANIFEST_FILE), JSON.stringify({ ...m, schema: 'something/2' })), /not a LYNX event dataset/);
    await damage((d) => truncateSync(join(d, m.chunks[0].features), 100), /data-00000\.safetensors is truncated.*damaged/);
    await damage((d) => rmSync(join(d, m.chunks[0].meta)), /data-00000\.jsonl is missing/);
    await damage((d) => {
      const p = join(d, m.chunks[0].meta);
      writeFileSync(p, readFileSync(p, 'utf8').split('\n').slice(1).join('\n'));
    }, /data-00000\.jsonl has \d+ rows, the manifest says \d+/);
    // A line that is not JSON, found while reading the dataset.
    const bad = fresh();
    cpSync(base, bad, { recursive: true });
    const p = join(bad, m.chunks[0].meta);
    const lines = readFileSync(p, 'utf8').split('\n');
    lines[0] = lines[0]!.slice(0, 20);
    writeFileSync(p, lines.join('\n'));
    expect(() => readDataset(bad)).toThrow(/data-00000\.jsonl:1 is not valid JSON/);
  });

  it('rejects bad option values with exit code 2', async () => {
    const dir = fresh();
    expect((await cli(buildArgs(dir, '--layers', '0,2'))).err).toMatch(/--layers: '0' is not a hidden-state index of this model \(1\.\.4/);
    expect((await cli(buildArgs(dir, '--cues', 'wait now'))).err).toMatch(/not a single word/);
    expect((await cli(buildArgs(dir, '--shard', '2/2'))).err).toMatch(/--shard 2\/2: need 0 <= i < N/);
    expect((await cli(buildArgs(dir, '--policy', 'fuzzy'))).code).toBe(2);
    expect(existsSync(join(dir, MANIFEST_FILE))).toBe(false);
  });
});

describe('events and features', () => {
  it("every cue the offline finder sees is an event, also late-confirmed ones, with its token's hidden state", async () => {
    // Seeds whose rollouts hold cues confirmed late: by `</think>`, by the end of the budget, or three or more tokens
    // after the word (tokens with empty text: the first bytes of a UTF-8 character). Every letter and digit is a cue.
    const cues = [...'abcdefghijklmnopqrstuvwxyz0123456789', 'the'];
    const layers = [2, 4];
    const problems: Problem[] = Array.from({ length: 10 }, (_, i) => ({ id: `p${i}`, benchmark: 'tiny', problem: `What is ${i} + ${i + 1}?`, gold: `${2 * i + 1}`, meta: {} }));
    const model = LlamaModel.load(modelPath);
    const context = new LlamaContext(model, { nCtx: 1024, nSeqMax: 1, threads: 1, kvType: 'f32', flashAttention: false });
    const taps = tapLayersFor(layers, model.info.nLayer);
    const thinkEnd = model.info.special.thinkEnd;
    const seen = { events: 0, synthetic: 0, thinkEnd: 0, endOfStream: 0, late: 0 };
    try {
      for (const seed of [2, 6, 11]) {
        const recs: RolloutRecord[] = [];
        await buildDataset({ model, problems, cues, hiddenStateLayers: layers, maxTokens: 64, answerMaxTokens: 4, seed, threads: 1, onRollout: (r) => void recs.push(r) });
        expect(recs).toHaveLength(problems.length);
        for (const rec of recs) {
          const decoder = new TextDecoder();
          const pieces = rec.tokens.map((t) => decoder.decode(model.tokenBytes(t), { stream: true }));
          const hits = findCueEvents(pieces, { cues });
          const real = rec.events.filter((e) => !e.synthetic);
          expect(real.map((e) => [e.position, e.cue, e.charOffset]), `${rec.problemId} seed ${seed}`).toEqual(hits.map((h) => [h.tokenIndex, h.cue, h.charStart]));
          if (hits.length === 0) {
            seen.synthetic += rec.events.length;
            continue;
          }
          seen.events += hits.length;
          for (const h of hits) {
            if (thinkEnd !== undefined && rec.tokens[h.confirmedAt] === thinkEnd) seen.thinkEnd++;
            else if (h.confirmedAt === rec.tokens.length) seen.endOfStream++;
            else if (h.confirmedAt - h.tokenIndex >= 3) seen.late++;
          }
          // The features are the event tokens' hidden states: decode prompt + trace again in one batch and compare.
          const prompt = problemPromptTokens(model, problems[rec.problemIndex]!);
          const seq = context.createSequence();
          try {
            const out = await seq.append([...prompt, ...rec.tokens], { taps: { layers: taps, positions: hits.map((h) => prompt.length + h.tokenIndex) } });
            const d = model.info.nEmbd;
            hits.forEach((_, i) => {
              const again = concatFeatures(new Map([...out.hidden].map(([l, all]) => [l, all.subarray(i * d, (i + 1) * d)])), taps);
              const got = rec.features.subarray(i * again.length, (i + 1) * again.length);
              let max = 0;
              for (let j = 0; j < again.length; j++) max = Math.max(max, Math.abs(got[j]! - again[j]!));
              expect(max, `${rec.problemId} seed ${seed} event ${i}`).toBeLessThan(1e-4);
            });
          } finally {
            seq.dispose();
          }
        }
      }
    } finally {
      context.dispose();
      model.dispose();
    }
    expect(seen.events).toBeGreaterThan(50);
    expect(seen.thinkEnd).toBeGreaterThan(0);
    expect(seen.endOfStream).toBeGreaterThan(0);
    expect(seen.late).toBeGreaterThan(0);
  });
});
