/**
 * Interruption, as a property: `lynx build-dataset` and `lynx eval` killed with SIGKILL at seeded random moments and
 * resumed each time end with the same folder as one uninterrupted run: byte for byte for the dataset, record for record
 * (timing fields aside) for the evaluation. And SIGTERM / SIGINT end a running command promptly with 143 / 130.
 *
 * The shipped demo model on the demo task, one thread, short budgets: 20 kills in all, on 2 cores.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../src/util/rng.js';
import { cli } from './helpers/cli.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MODEL = join(ROOT, 'models', 'lynx-demo', 'model.gguf');
const tmp = mkdtempSync(join(tmpdir(), 'lynx-rel-kill-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
process.env.LYNX_THREADS = '1';

const KILLS_PER_COMMAND = 10;

const buildArgs = (out: string) => ['build-dataset', '-m', MODEL, '-b', 'demo:probe', '--limit', '24', '-n', '160', '--answer-max-tokens', '12', '--threads', '1', '-c', '1', '--flush-every', '1', '-o', out];
const evalArgs = (out: string) => ['eval', '-m', MODEL, '-b', 'demo', '--limit', '24', '-n', '192', '-c', '1', '--fresh-context', '-o', out];

/**
 * Start the command in a child process and SIGKILL it at a random moment of its work: once `more` further records are
 * on disk (0: during start-up or its first record), then after a random delay of up to `jitterMs`.
 */
function killDuring(args: string[], recordsOnDisk: () => number, more: number, jitterMs: number): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, LYNX_THREADS: '1', NO_COLOR: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (b) => (stderr += b));
  const target = recordsOnDisk() + more;
  let timer: NodeJS.Timeout | undefined;
  const poll = setInterval(() => {
    if (recordsOnDisk() >= target && timer === undefined) {
      clearInterval(poll);
      timer = setTimeout(() => proc.kill('SIGKILL'), jitterMs);
    }
  }, 5);
  return new Promise((res) =>
    proc.on('exit', (code, signal) => {
      clearInterval(poll);
      clearTimeout(timer);
      res({ code, signal, stderr });
    }),
  );
}

function hashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).sort()) out[f] = createHash('sha256').update(readFileSync(join(dir, f))).digest('hex');
  return out;
}

/** JSON with timing and session fields removed (they differ between any two runs). */
function withoutTiming(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutTiming);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v)
        .filter(([k]) => !/^(wallMs|wallSec|createdAt|completedAt|lastSessionSec|seconds|.*Seconds|.*PerSecond|tokensPerSec.*)$/.test(k))
        .map(([k, x]) => [k, withoutTiming(x)]),
    );
  }
  return v;
}

const records = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => withoutTiming(JSON.parse(l)));

/** Kill `KILLS_PER_COMMAND` times at seeded moments (resuming each time), then finish in-process. */
async function killAndResume(args: string[], recordsOnDisk: () => number, rng: Rng): Promise<{ killed: number; finishedEarly: number }> {
  let killed = 0;
  let finishedEarly = 0;
  for (let k = 0; k < KILLS_PER_COMMAND; k++) {
    const r = await killDuring(args, recordsOnDisk, Math.floor(rng.next() * 2), Math.round(rng.next() * 300));
    expect(r.stderr).not.toMatch(/internal error|Error:/);
    if (r.signal === 'SIGKILL') killed++;
    else {
      expect(r.code).toBe(0); // finished before the kill: the property still holds
      finishedEarly++;
    }
  }
  const last = await cli(args);
  expect(last.err).toBe('');
  expect(last.code).toBe(0);
  return { killed, finishedEarly };
}

/** Finished units of a dataset folder (its manifest), 0 before it exists or while it is being replaced. */
function unitsOnDisk(dir: string): number {
  try {
    return (JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).units as string[]).length;
  } catch {
    return 0;
  }
}

/** Complete records of a run's predictions file. */
function linesOnDisk(file: string): number {
  try {
    return readFileSync(file, 'utf8').split('\n').length - 1;
  } catch {
    return 0;
  }
}

describe('SIGKILL at random moments, resumed each time', () => {
  it('build-dataset ends byte for byte as one uninterrupted build', async () => {
    const ref = join(tmp, 'ds-ref');
    expect((await cli(buildArgs(ref))).code).toBe(0);
    const dir = join(tmp, 'ds-killed');
    const { killed } = await killAndResume(buildArgs(dir), () => unitsOnDisk(dir), new Rng(20));
    expect(killed).toBeGreaterThan(KILLS_PER_COMMAND / 2);
    expect(hashes(dir)).toEqual(hashes(ref));
  });

  it('eval ends record for record (timing aside) as one uninterrupted run', async () => {
    const ref = join(tmp, 'ev-ref');
    expect((await cli(evalArgs(ref))).code).toBe(0);
    const dir = join(tmp, 'ev-killed');
    const run = (root: string) => join(root, 'eval', 'demo', 'full', 'full');
    const { killed } = await killAndResume(evalArgs(dir), () => linesOnDisk(join(run(dir), 'predictions.jsonl')), new Rng(22));
    expect(killed).toBeGreaterThan(KILLS_PER_COMMAND / 2);
    expect(records(join(run(dir), 'predictions.jsonl'))).toEqual(records(join(run(ref), 'predictions.jsonl')));
    expect(withoutTiming(JSON.parse(readFileSync(join(run(dir), 'metrics.json'), 'utf8')))).toEqual(withoutTiming(JSON.parse(readFileSync(join(run(ref), 'metrics.json'), 'utf8'))));
    expect(withoutTiming(JSON.parse(readFileSync(join(run(dir), 'config.json'), 'utf8')))).toEqual(withoutTiming(JSON.parse(readFileSync(join(run(ref), 'config.json'), 'utf8'))));
  });
});

describe('SIGTERM and SIGINT', () => {
  /** Start a long eval, signal it once its first record is on disk, and report how it ended. */
  async function signalled(signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string }> {
    const out = join(tmp, `sig-${signal}`);
    const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'eval', '-m', MODEL, '-b', 'demo', '--limit', '400', '-n', '512', '-c', '1', '-o', out], {
      cwd: ROOT,
      env: { ...process.env, LYNX_THREADS: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr!.on('data', (b) => (stderr += b));
    const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
    const preds = join(out, 'eval', 'demo', 'full', 'full', 'predictions.jsonl');
    const t0 = Date.now();
    while (!existsSync(preds) && proc.exitCode === null && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 20));
    proc.kill(signal);
    // A hang would hit the test's timeout; a kill after 30 s makes it fail with a clear code instead.
    const guard = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    const code = await exited;
    clearTimeout(guard);
    return { code, stderr };
  }

  it('SIGTERM mid-decode ends lynx eval with 143', async () => {
    const r = await signalled('SIGTERM');
    expect(r.code).toBe(143);
    expect(r.stderr).toContain('lynx: interrupted (SIGTERM)');
  });

  it('SIGINT mid-decode ends lynx eval with 130', async () => {
    const r = await signalled('SIGINT');
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('lynx: interrupted (SIGINT)');
  });
});
