/**
 * `lynx demo` and `lynx demo ship` on a demo folder built here: a tiny random qwen2 model with the demo tokenizer and
 * chat template, a random probe whose cue list is every single letter and digit (one-character words are frequent in
 * random text, so there are events), and a LYNX rule that exits when p > 0.5.
 *
 * What must hold whatever the model writes: both runs of a problem use the same seed in an exact-mode context, so a
 * problem LYNX did not exit on is token for token the baseline (same tokens, same answer), and one it exited on kept
 * exactly the baseline's first `exit.position` reasoning tokens; the JSON's sums agree with its per-problem rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildDemoTokenizer } from '../src/demo/corpus.js';
import { writeInitialModel } from '../src/demo/init-model.js';
import { writeTokenizerToGguf } from '../src/demo/tokenizer.js';
import { initLayers, Probe, saveProbe } from '../src/reasoning/lynx/probe/probe.js';
import { CONFORMAL_SCHEMA, type LynxRule } from '../src/reasoning/calibration/conformal.js';
import { ruleFileName } from '../src/reasoning/calibration/rule-files.js';
import { writeJsonAtomic } from '../src/util/fs.js';
import { Rng } from '../src/util/rng.js';
import { GgufFile } from '../src/formats/gguf/reader.js';
import type { DemoProblemResult, DemoSummary } from '../src/demo/compare.js';

const ROOT = resolve(__dirname, '..');
const CLI = [join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), join(ROOT, 'src', 'cli', 'main.ts')];
const N_EMBD = 32;
const LAYERS = [1, 2];
let dir: string;
let demoDir: string;

function lynx(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...CLI, ...args], { encoding: 'utf8', env: { ...process.env, LYNX_THREADS: '1', NO_COLOR: '1' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-demo-cli-'));
  const exp = join(dir, 'exp');
  const tok = buildDemoTokenizer();
  const modelPath = join(dir, 'tiny-demo.gguf');
  writeInitialModel(modelPath, {
    shape: { nEmbd: N_EMBD, nLayer: 2, nHead: 2, nFf: 64, contextLength: 512 },
    seed: 11,
    tokenizer: { nVocab: tok.vocabSize, writeTo: (w) => writeTokenizerToGguf(w, tok) },
  });
  const nFeatures = LAYERS.length * N_EMBD;
  const probe = new Probe(nFeatures, new Float32Array(nFeatures), new Float32Array(nFeatures).fill(1), initLayers([nFeatures, 16, 1], new Rng(3)));
  saveProbe(join(exp, 'probe'), probe, { hiddenStateLayers: LAYERS, cues: [...'abcdefghijklmnopqrstuvwxyz0123456789'] });
  // Prediction set {1} iff 1 - p <= qPos (always) and not 1 - (1 - p) <= qNeg, i.e. p > 0.5.
  const rule: LynxRule = {
    schema: CONFORMAL_SCHEMA,
    rule: 'lynx',
    delta: 0.1,
    qPos: 1,
    qNeg: 0.5,
    nCal: 200,
    nPos: 100,
    nNeg: 100,
    clipped: { pos: false, neg: false },
    valid: true,
    neededNeg: 9,
    refused: false,
    threshold: 0.5,
    guarantee: 'test rule',
  };
  mkdirSync(join(exp, 'conformal'), { recursive: true });
  writeJsonAtomic(join(exp, 'conformal', ruleFileName('lynx', 0.1)), rule);
  demoDir = join(dir, 'demo');
  execFileSync(process.execPath, [...CLI, 'demo', 'ship', '-m', modelPath, '--exp', exp, '--to', demoDir], { encoding: 'utf8' });
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('lynx demo', () => {
  it('ship lays out model, probe and rules as the demo expects', () => {
    for (const f of ['model.gguf', 'probe/probe.json', 'probe/probe.safetensors', 'conformal/conformal_calib_010.json']) {
      expect(existsSync(join(demoDir, f)), f).toBe(true);
    }
  });

  it('--json compares baseline and early exit problem by problem, consistently', () => {
    const r = lynx(['demo', '--dir', demoDir, '--json', '-n', '6', '--max-tokens', '48', '--concurrency', '3']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { summary: DemoSummary; problems: DemoProblemResult[] };
    const ps = out.problems;
    expect(ps).toHaveLength(6);
    expect(new Set(ps.map((p) => p.level))).toEqual(new Set([1, 2, 3, 4, 5]));
    let exits = 0;
    for (const p of ps) {
      const e = p.earlyExit;
      expect(p.tokensSaved).toBe(p.baseline.tokens - e.tokens);
      for (const ev of e.events) expect(ev.score).toBeGreaterThanOrEqual(0), expect(ev.score).toBeLessThanOrEqual(1);
      if (e.exit === null) {
        // No exit: the same trace as the baseline.
        expect(e.tokens).toBe(p.baseline.tokens);
        expect(e.answer).toBe(p.baseline.answer);
        expect(e.events.every((ev) => !ev.exit && ev.score <= 0.5)).toBe(true);
      } else {
        exits++;
        const last = e.events[e.events.length - 1]!;
        expect(last.exit).toBe(true);
        expect(last.score).toBeGreaterThan(0.5);
        expect(e.events.slice(0, -1).every((ev) => ev.score <= 0.5)).toBe(true);
        expect(e.exit.position).toBe(last.position);
        expect(e.reasoningTokens).toBe(e.exit.position);
        expect(e.exit.position).toBeLessThan(p.baseline.reasoningTokens);
      }
    }
    expect(exits).toBeGreaterThan(0);
    const s = out.summary;
    expect(s.problems).toBe(6);
    expect(s.exitRate).toBeCloseTo(exits / 6, 10);
    expect(s.baselineAvgTokens).toBeCloseTo(ps.reduce((a, p) => a + p.baseline.tokens, 0) / 6, 10);
    expect(s.earlyExitAvgTokens).toBeCloseTo(ps.reduce((a, p) => a + p.earlyExit.tokens, 0) / 6, 10);
    expect(s.tokenSavings).toBeCloseTo(1 - s.earlyExitAvgTokens / s.baselineAvgTokens, 10);
  });

  it('prints a per-problem table and the totals', () => {
    const r = lynx(['demo', '--dir', demoDir, '-n', '2', '--max-tokens', '32']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Baseline: +accuracy \d+%, \d+ tokens per problem/);
    expect(r.stdout).toMatch(/Early exit: accuracy \d+%/);
    expect(r.stdout.split('\n').filter((l) => /^L\d /.test(l))).toHaveLength(2);
  });

  it('names what is missing when the demo folder is incomplete, and unknown rules or deltas', () => {
    const missing = lynx(['demo', '--dir', join(dir, 'nowhere')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/shipped demo is incomplete: missing .*model\.gguf/);
    const delta = lynx(['demo', '--dir', demoDir, '--delta', '0.05']);
    expect(delta.code).toBe(1);
    expect(delta.stderr).toMatch(/no calibrated lynx rule for delta 0\.05.*available: conformal_calib_010\.json/);
  });
});

describe('lynx demo train', () => {
  it('lynx eval --fresh-context gives each problem exactly its lone run, whatever the concurrency', () => {
    const model = join(demoDir, 'model.gguf');
    const run = (out: string, c: string) => {
      const r = lynx(['eval', '-m', model, '-b', 'demo', '--limit', '4', '--method', 'full', '-n', '40', '--fresh-context', '-c', c, '-o', out]);
      expect(r.code, r.stderr).toBe(0);
      const rows = readFileSync(join(out, 'eval', 'demo', 'full', 'full', 'predictions.jsonl'), 'utf8').trim().split('\n');
      return rows.map((l) => JSON.parse(l) as { id: string; tokens: unknown; text: string; extracted: string | null }).sort((a, b) => a.id.localeCompare(b.id));
    };
    const together = run(join(dir, 'eval-fresh-4'), '4');
    const alone = run(join(dir, 'eval-fresh-1'), '1');
    expect(together).toHaveLength(4);
    expect(together.map((r) => [r.id, r.tokens, r.text, r.extracted])).toEqual(alone.map((r) => [r.id, r.tokens, r.text, r.extracted]));
    expect(new Set(together.map((r) => r.text)).size).toBeGreaterThan(1); // four different problems, four traces
  });

  it('trains a recipe, then a second stage from its weights starts where the first ended', () => {
    const out1 = join(dir, 'train1');
    const out2 = join(dir, 'train2');
    const common = ['--recipe', 'small', '--sequences', '6', '--threads', '1'];
    const r1 = lynx(['demo', 'train', ...common, '-o', out1]);
    expect(r1.code, r1.stderr).toBe(0);
    const model1 = join(out1, 'lynx-demo-small.gguf');
    expect(existsSync(model1)).toBe(true);
    const r2 = lynx(['demo', 'train', ...common, '-o', out2, '--init-from', model1, '--data-seed', '9']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stderr).toContain('init: continuing from');
    const curve = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as { complete: boolean; steps: [number, number][]; evals: { loss: number }[] };
    const c1 = curve(join(out1, 'lynx-demo-small.loss.json'));
    const c2 = curve(join(out2, 'lynx-demo-small.loss.json'));
    expect(c1.complete && c2.complete).toBe(true);
    // A random model starts near ln(630) = 6.4 nats and falls; the second stage's first evaluation (same validation
    // windows) is the first stage's last one, up to the F16 rounding of the saved weights.
    const first1 = c1.evals[0]!.loss;
    const last1 = c1.evals[c1.evals.length - 1]!.loss;
    expect(first1).toBeGreaterThan(5.5);
    expect(last1).toBeLessThan(first1 - 0.02);
    expect(Math.abs(c2.evals[0]!.loss - last1)).toBeLessThan(0.01);
    const f = GgufFile.open(join(out2, 'lynx-demo-small.gguf'));
    const stages = JSON.parse(f.getString('lynx.demo.stages')!) as { data: { seed: number } }[];
    f.close();
    expect(stages.map((s) => s.data.seed)).toEqual([303, 9]);
  });

  it('refuses an unknown recipe and a missing --init-from file', () => {
    expect(lynx(['demo', 'train', '--recipe', 'huge']).stderr).toMatch(/unknown recipe 'huge'/);
    const r = lynx(['demo', 'train', '--init-from', join(dir, 'none.gguf')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--init-from: no file at/);
  });
});
