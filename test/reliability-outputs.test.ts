/**
 * Reliability of outputs: nothing is lost or mixed. `lynx eval` into a run folder built with other settings refuses (as
 * build-dataset does); train-probe and calibrate refuse to overwrite earlier results without --force; build-dataset
 * refuses an evaluation folder; an output under a file or in a read-only folder is refused before any work.
 */
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './helpers/cli.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEMO = join(ROOT, 'models', 'lynx-demo');
const MODEL = join(DEMO, 'model.gguf');
const tmp = mkdtempSync(join(tmpdir(), 'lynx-rel-out-'));
afterAll(() => {
  try {
    chmodSync(join(tmp, 'ro'), 0o755);
  } catch {
    // not made
  }
  rmSync(tmp, { recursive: true, force: true });
});

const evalArgs = (out: string, ...extra: string[]) => ['eval', '-m', MODEL, '-b', 'demo', '--limit', '2', '-n', '24', '-c', '1', '-o', out, ...extra];
const runDir = (out: string, method = 'full', setting = 'full') => join(out, 'eval', 'demo', method, setting);
const snapshot = (dir: string) => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f), 'utf8')]));

describe('lynx eval into an existing run folder', () => {
  const exp = join(tmp, 'exp');
  let before: Record<string, string>;
  beforeAll(async () => {
    process.env.LYNX_THREADS = '1';
    const r = await cli(evalArgs(exp));
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    before = snapshot(runDir(exp));
  });

  it.each([
    ['seed', ['--seed', '9'], /seed 0 there, 9 now/],
    ['-n', ['-n', '32'], /maxTokens 24 there, 32 now/],
    ['-t', ['-t', '0.2'], /sampler .*"temperature":0\.6.* there, .*"temperature":0\.2.* now/],
    ['model', ['-m', join(tmp, 'other.gguf')], /model .*model\.gguf there, .*other\.gguf now/],
  ])('with another %s refuses, names the setting, and changes nothing', async (_name, extra, message) => {
    if (!existsSync(join(tmp, 'other.gguf'))) cpSync(MODEL, join(tmp, 'other.gguf'));
    const r = await cli([...evalArgs(exp), ...extra]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/holds a run built with other settings \(\w+ differs\)/);
    expect(r.err).toMatch(message);
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    expect(snapshot(runDir(exp))).toEqual(before);
  });

  it('with the same settings resumes (nothing to do) and keeps the records', async () => {
    const r = await cli(evalArgs(exp));
    expect(r.code).toBe(0);
    expect(snapshot(runDir(exp))['predictions.jsonl']).toBe(before['predictions.jsonl']);
  });

  it('lynx with another --probe refuses', async () => {
    const a = join(tmp, 'probe-a');
    const b = join(tmp, 'probe-b');
    cpSync(DEMO, a, { recursive: true });
    cpSync(DEMO, b, { recursive: true });
    const lynx = (probe: string) => cli([...evalArgs(join(tmp, 'exp-lynx')), '--method', 'lynx', '--probe', probe, '--delta', '0.1']);
    expect((await lynx(a)).code).toBe(0);
    const r = await lynx(b);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/holds a run built with other settings \(probe differs\): probe .*probe-a there, .*probe-b now/);
  });

  it('build-dataset refuses the evaluation folder', async () => {
    const r = await cli(['build-dataset', '-m', MODEL, '-b', 'demo', '--limit', '1', '--threads', '1', '-o', exp]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/-o .*exp is an evaluation folder \(eval\), not a dataset/);
    const inRun = await cli(['build-dataset', '-m', MODEL, '-b', 'demo', '--limit', '1', '--threads', '1', '-o', runDir(exp)]);
    expect(inRun.code).toBe(1);
    expect(inRun.err).toMatch(/is an evaluation folder \(config\.json, metrics\.json, predictions\.jsonl\)/);
    expect(existsSync(join(exp, 'manifest.json'))).toBe(false);
  });
});

describe('earlier results are not overwritten', () => {
  it('train-probe -o EXISTING refuses unless --force, before training', async () => {
    const out = join(tmp, 'probe-existing');
    cpSync(join(DEMO, 'probe'), out, { recursive: true });
    const was = readFileSync(join(out, 'probe.json'), 'utf8');
    // The dataset does not exist: the output check comes first, so the message is about the output.
    const r = await cli(['train-probe', join(tmp, 'no-dataset'), '-o', out, '-q']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/-o .*probe-existing already holds a probe \(probe\.json, probe\.safetensors\): pass --force/);
    expect(readFileSync(join(out, 'probe.json'), 'utf8')).toBe(was);
    const forced = await cli(['train-probe', join(tmp, 'no-dataset'), '-o', out, '-q', '--force']);
    expect(forced.err).not.toMatch(/already holds/);
  });

  it('calibrate -o EXISTING refuses unless --force', async () => {
    const out = join(tmp, 'conformal-existing');
    cpSync(join(DEMO, 'conformal'), out, { recursive: true });
    const r = await cli(['calibrate', '--probe', DEMO, '--data', join(tmp, 'no-data'), '-o', out, '-q']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/already holds calibrated rules \(summary\.json, conformal_calib_001\.json, ltt_001\.json, crc_001\.json\): pass --force/);
    const forced = await cli(['calibrate', '--probe', DEMO, '--data', join(tmp, 'no-data'), '-o', out, '-q', '--force']);
    expect(forced.err).not.toMatch(/already holds/);
  });
});

describe('unwritable outputs are refused before any work', () => {
  const file = join(tmp, 'a-file');
  const ro = join(tmp, 'ro');
  beforeAll(() => {
    writeFileSync(file, 'x');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
  });
  const isRoot = process.getuid?.() === 0;
  const cases: [string, (out: string) => string[]][] = [
    ['eval', (out) => evalArgs(out)],
    ['build-dataset', (out) => ['build-dataset', '-m', MODEL, '-b', 'demo', '--limit', '1', '--threads', '1', '-o', out]],
    ['train-probe', (out) => ['train-probe', join(tmp, 'no-dataset'), '-o', out, '-q']],
    ['calibrate', (out) => ['calibrate', '--probe', DEMO, '--data', join(tmp, 'no-data'), '-o', out, '-q']],
  ];
  it.each(cases)('%s: output under a file, a file as output, a read-only folder', async (_name, args) => {
    const under = await cli(args(join(file, 'sub')));
    expect(under.code).toBe(1);
    expect(under.err).toMatch(/a-file is a file, so no folder can be made under it/);
    const asFile = await cli(args(file));
    expect(asFile.code).toBe(1);
    expect(asFile.err).toMatch(/a-file is a file, not a folder/);
    if (!isRoot) {
      const r = await cli(args(join(ro, 'out')));
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/ro is not writable: choose a folder you can write to/);
    }
    for (const r of [under, asFile]) expect(r.err.trimEnd().split('\n')).toHaveLength(1);
  });
});
