/**
 * Reliability of benchmark data: malformed JSONL lines, empty files, missing fields and non-UTF-8 bytes are named by
 * file:line (exit 1); a 10 MB problem is loaded, then refused by id before any context is sized to it (or skipped with
 * --skip-long-prompts), in build-dataset and eval alike.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadJsonlBenchmark } from '../src/tasks/benchmarks.js';
import { readJsonl } from '../src/util/jsonl.js';
import { cli } from './helpers/cli.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MODEL = join(ROOT, 'models', 'lynx-demo', 'model.gguf');
const tmp = mkdtempSync(join(tmpdir(), 'lynx-rel-data-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
process.env.LYNX_THREADS = '1';

const ok = (id: string, problem = 'Mia has 3 apples and buys 4 more. How many apples does she have?') => JSON.stringify({ id, problem, answer: '7' });
const file = (name: string, content: string | Buffer) => {
  const p = join(tmp, name);
  writeFileSync(p, content);
  return p;
};

describe('JSONL benchmarks', () => {
  const cases: [string, string, RegExp][] = [
    ['a malformed line', file('malformed.jsonl', [ok('a'), '{"problem": "x", "answer":', ok('b')].join('\n')), /malformed\.jsonl:2: malformed JSON line/],
    ['a line that is not an object', file('array.jsonl', [ok('a'), '[1, 2]'].join('\n')), /array\.jsonl:2: expected a JSON object per line/],
    ['an empty file', file('empty.jsonl', ''), /empty\.jsonl holds no problems/],
    ['only blank lines', file('blank.jsonl', '\n\n  \n'), /blank\.jsonl holds no problems/],
    ['a missing answer', file('noanswer.jsonl', [ok('a'), ok('b'), JSON.stringify({ id: 'c', problem: 'x' })].join('\n')), /noanswer\.jsonl:3: missing answer field "answer"/],
    ['a missing problem', file('noproblem.jsonl', [JSON.stringify({ id: 'c', answer: '1' })].join('\n')), /noproblem\.jsonl:1: missing string field "problem" or "question"/],
    ['a wrong-typed problem', file('typed.jsonl', [JSON.stringify({ id: 'c', problem: 5, answer: '1' })].join('\n')), /typed\.jsonl:1: missing string field/],
    ['a duplicate id', file('dup.jsonl', [ok('a'), ok('a')].join('\n')), /dup\.jsonl:2: duplicate id a/],
    ['non-UTF-8 bytes', file('latin1.jsonl', Buffer.concat([Buffer.from(ok('a') + '\n'), Buffer.from('{"id": "b", "problem": "2+2?", "answer": "4'), Buffer.from([0xb0]), Buffer.from('"}\n')])), /latin1\.jsonl:2: not valid UTF-8 text/],
    ['a lone continuation byte', file('cont.jsonl', Buffer.concat([Buffer.from([0x80]), Buffer.from(ok('a'))])), /cont\.jsonl:1: not valid UTF-8/],
  ];
  it.each(cases)('%s is refused naming file:line', (_name, path, message) => {
    expect(() => loadJsonlBenchmark(path)).toThrow(message);
  });

  it.each(cases.slice(0, 3))('%s stops lynx eval with exit 1 and one line', async (_name, path, message) => {
    const r = await cli(['eval', '-m', MODEL, '-b', path, '-o', join(tmp, 'never'), '-n', '16']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(message);
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    expect(existsSync(join(tmp, 'never', 'eval'))).toBe(false);
  });

  it('readJsonl refuses non-UTF-8 too (run records, DEER inputs)', () => {
    const p = file('records.jsonl', Buffer.concat([Buffer.from('{"a": 1}\n{"a": "'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]));
    expect(() => readJsonl(p)).toThrow(/records\.jsonl:2: not valid UTF-8/);
  });

  it('valid UTF-8 beyond ASCII is read unchanged', () => {
    const p = file('utf8.jsonl', JSON.stringify({ id: 'u', problem: 'Ünïcödé 😀: 2+2?', answer: '4' }) + '\n');
    expect(loadJsonlBenchmark(p)[0]!.problem).toBe('Ünïcödé 😀: 2+2?');
  });
});

describe('a 10 MB problem', () => {
  const huge = 'How many? '.repeat(1_000_000); // 10 MB in one line
  const bench = file('huge.jsonl', [ok('small-1'), JSON.stringify({ id: 'huge', problem: huge, answer: '1' }), ok('small-2')].join('\n') + '\n');

  it('loads (one 10 MB line)', () => {
    const ps = loadJsonlBenchmark(bench);
    expect(ps.map((p) => p.id)).toEqual(['huge/small-1', 'huge/huge', 'huge/small-2']);
    expect(ps[1]!.problem.length).toBe(10_000_000);
  });

  const build = (out: string, ...extra: string[]) => ['build-dataset', '-m', MODEL, '-b', bench, '-n', '16', '--answer-max-tokens', '4', '--threads', '1', '-c', '1', '-o', out, ...extra];
  const evaluate = (out: string, ...extra: string[]) => ['eval', '-m', MODEL, '-b', bench, '-n', '16', '-c', '1', '-o', out, ...extra];

  it.each([
    ['build-dataset', build],
    ['eval', evaluate],
  ])('%s refuses it by id before allocating, and skips it with --skip-long-prompts', async (_name, args) => {
    const out = join(tmp, `out-${_name}`);
    const refused = await cli(args(out));
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^lynx: problem huge\/huge: its prompt has more than \d+ tokens \(10000000 bytes\), beyond the 512 the model's context allows \(its training context\): pass --skip-long-prompts/);
    const skipped = await cli(args(out, '--skip-long-prompts'));
    expect(skipped.err).toMatch(/lynx: warning: skipping problem huge\/huge: its prompt has \d+ tokens, more than 512/);
    expect(skipped.code).toBe(0);
  });

  it('--max-prompt-tokens lowers the limit, and the count is exact below the byte bound', async () => {
    const r = await cli(evaluate(join(tmp, 'out-limit'), '--max-prompt-tokens', '5'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/problem huge\/small-1: its prompt has \d+ tokens, beyond the 5 the model's context allows \(--max-prompt-tokens\)/);
  });
});
