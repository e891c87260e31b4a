/**
 * Reliability of the `lynx` command line: every error a user can cause is one line `lynx: <message>` on stderr, exit
 * code 1 for bad files and data, 2 for usage (a bad option value), no stack unless LYNX_DEBUG=1; every numeric option
 * is range-checked with the allowed range in its message, before any work.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { maxThreads } from '../src/engine/threads.js';
import { InvalidInputError, LynxError, UsageError, asUsage } from '../src/util/errors.js';
import { describeError } from '../src/cli/main.js';
import { cli } from './helpers/cli.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MODEL = join(ROOT, 'models', 'lynx-demo', 'model.gguf');
const PROBE = join(ROOT, 'models', 'lynx-demo');
const tmp = mkdtempSync(join(tmpdir(), 'lynx-rel-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** One line on stderr, starting `lynx: `, with no stack frame. */
function expectOneLine(err: string): void {
  const lines = err.trimEnd().split('\n');
  expect(lines[0]).toMatch(/^lynx: /);
  expect(err).not.toMatch(/^\s+at /m);
  expect(err).not.toMatch(/internal error/);
  // commander's usage hint may follow; nothing else
  expect(lines.slice(1).every((l) => l === '(add --help for usage)')).toBe(true);
}

describe('error reporting', () => {
  it('classifies errors: usage 2, data 1, file system 1, bugs rethrown', () => {
    expect(describeError(new UsageError('x'))?.code).toBe(2);
    expect(describeError(new InvalidInputError('x'))?.code).toBe(1);
    expect(describeError(new LynxError('x'))?.code).toBe(1);
    const eacces = Object.assign(new Error("EACCES: permission denied, open '/ro/x'"), { code: 'EACCES', syscall: 'open' });
    expect(describeError(eacces)).toEqual({ code: 1, message: expect.stringMatching(/permission denied.*choose a folder you can write to/) });
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
    expect(describeError(enospc)?.message).toMatch(/disk is full/);
    expect(describeError(new TypeError('x is undefined'))).toBeNull();
    expect(() => asUsage(() => { throw new InvalidInputError('bad --x'); })).toThrow(UsageError);
  });

  it('an empty prompt is a usage error in one line (exit 2, no stack)', async () => {
    const r = await cli(['generate', '-m', MODEL, '-p', '']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('lynx: the prompt is empty: give --prompt text or --bos\n');
  });

  it('a missing or broken model file is a data error (exit 1)', async () => {
    const r = await cli(['generate', '-m', join(tmp, 'nope.gguf'), '-p', 'hi']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^lynx: model not found: .*nope\.gguf\n$/);
  });

  it('commander errors (unknown option, missing option) are usage errors in the same format', async () => {
    const unknown = await cli(['generate', '-m', MODEL, '-p', 'hi', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/^lynx: unknown option '--bogus'/);
    expectOneLine(unknown.err.replace(/\(Did you mean .*\)\n/, ''));
    const missing = await cli(['eval', '-m', MODEL, '-b', 'demo']);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/^lynx: required option '-o, --out <dir>' not specified/);
    expect((await cli(['--version'])).code).toBe(0);
  });

  it('a spawned lynx prints no stack unless LYNX_DEBUG=1', () => {
    const run = (env: Record<string, string>) =>
      spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'generate', '-m', MODEL, '-p', ''], {
        encoding: 'utf8',
        cwd: ROOT,
        env: { ...process.env, LYNX_THREADS: '1', ...env },
      });
    const plain = run({ LYNX_DEBUG: '' });
    expect(plain.status).toBe(2);
    expect(plain.stderr).toBe('lynx: the prompt is empty: give --prompt text or --bos\n');
    const debug = run({ LYNX_DEBUG: '1' });
    expect(debug.status).toBe(2);
    expect(debug.stderr).toMatch(/^lynx: the prompt is empty/);
    expect(debug.stderr).toMatch(/^\s+at .*generate\.ts/m);
  });
});

describe('option ranges', () => {
  const gen = (...extra: string[]) => ['generate', '-m', MODEL, '-p', 'hi', ...extra];
  const evalArgs = (...extra: string[]) => ['eval', '-m', MODEL, '-b', 'demo', '--limit', '1', '-o', join(tmp, 'never'), ...extra];
  const build = (...extra: string[]) => ['build-dataset', '-m', MODEL, '-b', 'demo', '--limit', '1', '-o', join(tmp, 'never-ds'), ...extra];
  const cases: [string, string[], RegExp][] = [
    ['-t Infinity', gen('-t', 'Infinity'), /--temperature must be a finite number >= 0, got 'Infinity'/],
    ['-t -1', gen('-t', '-1'), /--temperature must be a finite number >= 0, got '-1'/],
    ['-t NaN', gen('-t', 'NaN'), /--temperature must be a finite number >= 0, got 'NaN'/],
    ['-n 0', gen('-n', '0'), /--max-tokens must be an integer from 1 to 1048576, got '0'/],
    ['-n 1e9', gen('-n', '1000000000'), /--max-tokens must be an integer from 1 to 1048576/],
    ['-n 2.5', gen('-n', '2.5'), /--max-tokens must be an integer/],
    ['-n empty', gen('-n', ''), /--max-tokens must be an integer/],
    ['--top-p 1.5', gen('--top-p', '1.5'), /--top-p must be a number in \[0, 1\], got '1.5'/],
    ['--ctx 1e12', gen('--ctx', '1000000000000'), /--ctx must be an integer from 16 to 16777216/],
    ['eval --delta 1.5', evalArgs('--method', 'lynx', '--probe', PROBE, '--delta', '1.5'), /--delta must be a number in \(0, 1\), got '1.5'/],
    ['eval --delta 0', evalArgs('--method', 'lynx', '--probe', PROBE, '--delta', '0'), /--delta must be a number in \(0, 1\), got '0'/],
    ['eval --delta abc', evalArgs('--method', 'lynx', '--probe', PROBE, '--delta', '0.1,abc'), /--delta must be a number in \(0, 1\), got 'abc'/],
    ['eval --budget 0', evalArgs('--method', 'budget', '--budget', '0'), /--budget must be an integer from 1 to 1048576, got '0'/],
    ['eval --threshold 2', evalArgs('--method', 'deer', '--threshold', '2'), /--threshold must be a number in \[0, 1\]/],
    ['eval -t Infinity', evalArgs('-t', 'Infinity'), /--temperature must be a finite number >= 0/],
    ['eval -c 100000', evalArgs('-c', '100000'), /--concurrency must be an integer from 1 to 256/],
    ['build --threads 1000', build('--threads', '1000'), new RegExp(`--threads must be an integer from 1 to ${maxThreads()} \\(2 x the \\d+ available cores\\), got '1000'`)],
    ['build --threads 0', build('--threads', '0'), /--threads must be an integer from 1 to/],
    ['build --answer-max-tokens 0', build('--answer-max-tokens', '0'), /--answer-max-tokens must be an integer from 1/],
    ['build --layers x', build('--layers', 'x'), /--layers must be an integer, got 'x'/],
    ['run --delta 1', ['run', '-m', MODEL, '--probe', PROBE, '-p', 'hi', '--delta', '1'], /--delta must be a number in \(0, 1\), got '1'/],
    ['calibrate --deltas 1.5', ['calibrate', '--probe', PROBE, '--data', tmp, '-o', join(tmp, 'c'), '--deltas', '1.5'], /--deltas: '1\.5' is not a number in \(0, 1\)/],
    ['calibrate --alpha 0', ['calibrate', '--probe', PROBE, '--data', tmp, '-o', join(tmp, 'c'), '--alpha', '0'], /--alpha must be a number in \(0, 1\)/],
    ['calibrate --rules x', ['calibrate', '--probe', PROBE, '--data', tmp, '-o', join(tmp, 'c'), '--rules', 'x'], /unknown rule 'x'/],
    ['train-probe --val-split 1', ['train-probe', tmp, '-o', join(tmp, 'p'), '--val-split', '1'], /--val-split must be a number in \(0, 1\)/],
    ['train-probe --threads 99', ['train-probe', tmp, '-o', join(tmp, 'p'), '--threads', '99'], /--threads must be an integer from 1 to/],
    ['serve --port 70000', ['serve', '--port', '70000'], /--port must be an integer from 0 to 65535/],
    ['serve --threads 1000', ['serve', '--threads', '1000'], /--threads must be an integer from 1 to/],
    ['eval --policy fuzzy', evalArgs('--policy', 'fuzzy'), /fuzzy/],
    ['eval --shard 3/2', evalArgs('--shard', '3/2'), /--shard 3\/2/],
    ['generate --draft-vocab without --draft', gen('--draft-vocab', '100'), /--draft-vocab needs --draft heads/],
    ['generate --draft-vocab 0', gen('--draft', 'heads', '--draft-vocab', '0'), /--draft-vocab/],
  ];
  it.each(cases)('%s is refused with its range (exit 2), before any work', async (_name, args, message) => {
    const r = await cli(args);
    expect(r.err).toMatch(message);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err.split('\n')[0]).toMatch(/^lynx: /);
    expect(r.err).not.toMatch(/^\s+at /m);
  });

  it.each([
    ['--remote-model', ['--remote-model', 'm'], /--remote-model needs --backend openai/],
    ['--retries', ['--retries', '3'], /--retries needs --backend openai/],
    ['--no-vocab-check', ['--no-vocab-check'], /--no-vocab-check needs --backend openai/],
    ['--api-key and --max-inflight', ['--api-key', 'k', '--max-inflight', '4'], /--api-key .*, --max-inflight need --backend openai/],
  ])('a remote option (%s) with the local engine is refused by name, not ignored', async (_name, extra, message) => {
    const r = await cli(evalArgs(...(extra as string[])));
    expect(r.err).toMatch(message);
    expect(r.code).toBe(2);
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
  });

  it('-n beyond the context is refused with the largest budget that fits', async () => {
    const r = await cli(gen('-n', '100000', '--ctx', '256'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^lynx: the prompt \(\d+ tokens\) and --max-tokens 100000 need \d+ tokens, but the context holds 256 \(--ctx\): use -n \d+ or less/);
  });
});
