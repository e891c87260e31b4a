/**
 * `fetchBenchmark` against a local HTTP server that serves copies of ../shared/data in the shapes of GitHub raw
 * files and the Hugging Face dataset viewer's /splits and /rows API. Never the real network.
 */
import { loadBenchmark } from '../src/tasks/registry.js';
import { describe, expect, it, beforeAll, afterAll, afterEach } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FetchError, fetchBenchmark, fetchableBenchmarks } from '../src/tasks/fetch.js';
import {
  loadAime24,
  loadAmc23,
  loadCommonsenseQa,
  loadGsm8k,
  loadMath,
  loadMath500,
} from '../src/tasks/benchmarks.js';
import { UnsupportedError } from '../src/util/errors.js';

const DATA = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'shared', 'data');

type Row = Record<string, unknown>;
const jsonl = (rel: string): Row[] =>
  readFileSync(join(DATA, rel), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Row);

/** dataset -> config -> split -> rows, in the column layout of the Hub datasets */
const hub = new Map<string, Map<string, Map<string, Row[]>>>();
function put(dataset: string, config: string, split: string, rows: Row[]) {
  if (!hub.has(dataset)) hub.set(dataset, new Map());
  const d = hub.get(dataset)!;
  if (!d.has(config)) d.set(config, new Map());
  d.get(config)!.set(split, rows);
}

for (const split of ['train', 'test']) {
  const bySubject = new Map<string, Row[]>();
  for (const r of jsonl(`math/${split}.jsonl`)) {
    const subject = (r.unique_id as string).split('/')[1]!;
    if (!bySubject.has(subject)) bySubject.set(subject, []);
    bySubject.get(subject)!.push({ problem: r.problem, level: r.level, type: r.type, solution: r.solution });
  }
  for (const [subject, rows] of bySubject) put('EleutherAI/hendrycks_math', subject, split, rows);
}
put('HuggingFaceH4/MATH-500', 'default', 'test', jsonl('math500/test.jsonl'));
put(
  'Maxwell-Jia/AIME_2024',
  'default',
  'train',
  jsonl('aime24/test.jsonl').map((r, i) => ({ ID: `2024-${i < 15 ? 'I' : 'II'}-${(i % 15) + 1}`, Problem: r.problem, Solution: r.solution, Answer: Number(r.answer) })),
);
put('knoveleng/AMC-23', 'default', 'train', jsonl('amc23/test.jsonl').map((r) => ({ id: r.id, problem: r.problem, answer: r.answer, url: r.url })));
put(
  'tau/commonsense_qa',
  'default',
  'validation',
  jsonl('commonsenseqa/dev_rand_split.jsonl').map((r) => {
    const q = r.question as { stem: string; question_concept: string; choices: { label: string; text: string }[] };
    return {
      id: r.id,
      question: q.stem,
      question_concept: q.question_concept,
      choices: { label: q.choices.map((c) => c.label), text: q.choices.map((c) => c.text) },
      answerKey: r.answerKey,
    };
  }),
);
put('tau/commonsense_qa', 'default', 'train', []);

/** test knobs */
const faults = { tooManyRequests: 0, dropLastRow: '', truncate: '', gsmOverride: null as string | null, notJson: '' };
let requests = 0;
let server: Server;
let baseUrl = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    requests++;
    const url = new URL(req.url!, 'http://x');
    const send = (status: number, body: string, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    if (faults.tooManyRequests > 0) {
      faults.tooManyRequests--;
      return send(429, '{"error":"slow down"}');
    }
    if (faults.notJson === url.pathname) return send(200, '<html>busy</html>', 'text/html');
    const gh = /^\/openai\/grade-school-math\/master\/grade_school_math\/data\/(test|train)\.jsonl$/.exec(url.pathname);
    if (gh) {
      if (gh[1] === 'test' && faults.gsmOverride !== null) return send(200, faults.gsmOverride, 'text/plain');
      return send(200, readFileSync(join(DATA, 'gsm8k', `${gh[1]}.jsonl`), 'utf8'), 'text/plain');
    }
    const dataset = url.searchParams.get('dataset') ?? '';
    if (url.pathname === '/splits') {
      const d = hub.get(dataset);
      if (!d) return send(404, '{"error":"not found"}');
      const splits = [...d].flatMap(([config, s]) => [...s.keys()].map((split) => ({ dataset, config, split })));
      return send(200, JSON.stringify({ splits }));
    }
    if (url.pathname === '/rows') {
      const length = Number(url.searchParams.get('length'));
      if (length > 100) return send(422, '{"error":"length must be <= 100"}');
      const offset = Number(url.searchParams.get('offset'));
      const all = hub.get(dataset)?.get(url.searchParams.get('config')!)?.get(url.searchParams.get('split')!);
      if (!all) return send(404, '{"error":"not found"}');
      const rows = faults.dropLastRow === dataset ? all.slice(0, -1) : all;
      const page = rows.slice(offset, offset + length).map((row, i) => ({
        row_idx: offset + i,
        row,
        truncated_cells: faults.truncate === dataset && offset + i === 3 ? ['problem'] : [],
      }));
      return send(200, JSON.stringify({ features: [], rows: page, num_rows_total: all.length, partial: false }));
    }
    send(404, 'not found', 'text/plain');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'lynx-fetch-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
  Object.assign(faults, { tooManyRequests: 0, dropLastRow: '', truncate: '', gsmOverride: null, notJson: '' });
});

const fast = { retryDelayMs: 1 };

describe('fetchBenchmark', () => {
  it('knows every benchmark the loaders read', () => {
    expect(fetchableBenchmarks().sort()).toEqual(['aime24', 'amc23', 'commonsenseqa', 'gsm8k', 'math', 'math500']);
  });

  it('GSM8K: byte-identical files, verified by count and sha256, with provenance', async () => {
    const dir = tmp();
    const r = await fetchBenchmark('gsm8k', { dataDir: dir, baseUrl, ...fast });
    expect(r.files.map((f) => [f.path, f.records])).toEqual([
      ['gsm8k/test.jsonl', 1319],
      ['gsm8k/train.jsonl', 7473],
    ]);
    for (const split of ['test', 'train'])
      expect(readFileSync(join(dir, 'gsm8k', `${split}.jsonl`)).equals(readFileSync(join(DATA, 'gsm8k', `${split}.jsonl`)))).toBe(true);
    expect(loadGsm8k({ dataDir: dir })).toEqual(loadGsm8k({ dataDir: DATA }));
    const source = JSON.parse(readFileSync(join(dir, 'gsm8k', 'SOURCE.json'), 'utf8'));
    expect(source.files[0].source).toBe(`${baseUrl}/openai/grade-school-math/master/grade_school_math/data/test.jsonl`);
  });

  it('MATH: every subject and split from the rows API gives the same problems and golds', async () => {
    const dir = tmp();
    await fetchBenchmark('math', { dataDir: dir, baseUrl, ...fast });
    for (const split of ['train', 'test'] as const) {
      const got = loadMath({ dataDir: dir, split });
      const want = loadMath({ dataDir: DATA, split });
      expect(got.map((p) => [p.problem, p.gold, p.meta.subset, p.meta.level])).toEqual(
        want.map((p) => [p.problem, p.gold, p.meta.subset, p.meta.level]),
      );
    }
    // subsets and offsets work on fetched data too
    expect(loadMath({ dataDir: dir, split: 'train', subsets: ['geometry'], limitPerSubset: 5 })).toHaveLength(5);
  });

  it('MATH-500, AIME 2024, AMC 2023 and CommonsenseQA convert to the loaders layout', async () => {
    const dir = tmp();
    for (const name of ['math500', 'aime24', 'amc23', 'commonsenseqa']) await fetchBenchmark(name, { dataDir: dir, baseUrl, ...fast });
    expect(loadMath500({ dataDir: dir })).toEqual(loadMath500({ dataDir: DATA }));
    const aime = loadAime24({ dataDir: dir });
    expect(aime).toHaveLength(30);
    expect(aime[0]!.id).toBe('aime24/2024-I-1');
    expect(aime.map((p) => [p.problem, Number(p.gold)])).toEqual(loadAime24({ dataDir: DATA }).map((p) => [p.problem, Number(p.gold)]));
    expect(loadAmc23({ dataDir: dir })).toEqual(loadAmc23({ dataDir: DATA }));
    expect(loadCommonsenseQa({ dataDir: dir })).toEqual(loadCommonsenseQa({ dataDir: DATA }));
    expect(loadBenchmark('commonsenseqa', { dataDir: dir })[0]!.choices).toHaveLength(5);
  });

  it('retries rate limiting', async () => {
    const dir = tmp();
    faults.tooManyRequests = 2;
    const before = requests;
    await fetchBenchmark('amc23', { dataDir: dir, baseUrl, ...fast });
    expect(requests - before).toBe(2 + 2); // two refusals, then /splits and one page of rows
    expect(loadAmc23({ dataDir: dir })).toHaveLength(40);
    faults.tooManyRequests = 10;
    await expect(fetchBenchmark('amc23', { dataDir: tmp(), baseUrl, retries: 3, ...fast })).rejects.toThrow(/HTTP 429/);
  });

  it('verifies and writes nothing when a check fails', async () => {
    const dir = tmp();
    // an existing good copy must survive a failed fetch untouched
    mkdirSync(join(dir, 'gsm8k'), { recursive: true });
    writeFileSync(join(dir, 'gsm8k', 'test.jsonl'), 'old\n');
    const original = readFileSync(join(DATA, 'gsm8k', 'test.jsonl'), 'utf8');
    faults.gsmOverride = original.replace('Janet', 'Jane');
    await expect(fetchBenchmark('gsm8k', { dataDir: dir, baseUrl, ...fast })).rejects.toThrow(/sha256 .* differs/);
    expect(readFileSync(join(dir, 'gsm8k', 'test.jsonl'), 'utf8')).toBe('old\n');
    expect(existsSync(join(dir, 'gsm8k', 'train.jsonl'))).toBe(false);
    // accepted when the hash check is off (the content still has the right count and fields)
    await fetchBenchmark('gsm8k', { dataDir: dir, baseUrl, verifyHash: false, ...fast });
    expect(loadGsm8k({ dataDir: dir })[0]!.problem).toMatch(/^Jane/);

    faults.gsmOverride = original.split('\n').slice(1).join('\n');
    await expect(fetchBenchmark('gsm8k', { dataDir: tmp(), baseUrl, verifyHash: false, ...fast })).rejects.toThrow(
      /expected 1319 records for gsm8k\/test.jsonl, got 1318/,
    );
    faults.gsmOverride = null;

    faults.dropLastRow = 'HuggingFaceH4/MATH-500';
    await expect(fetchBenchmark('math500', { dataDir: dir, baseUrl, ...fast })).rejects.toThrow(FetchError);
    faults.dropLastRow = '';
    faults.truncate = 'knoveleng/AMC-23';
    await expect(fetchBenchmark('amc23', { dataDir: dir, baseUrl, ...fast })).rejects.toThrow(/truncated problem/);
    expect(existsSync(join(dir, 'math500'))).toBe(false);
    expect(existsSync(join(dir, 'amc23'))).toBe(false);
  });

  it('names the URL of an API response that is not JSON', async () => {
    for (const path of ['/splits', '/rows']) {
      faults.notJson = path;
      await expect(fetchBenchmark('amc23', { dataDir: tmp(), baseUrl, ...fast })).rejects.toThrow(new RegExp(`${path}\\?dataset=.*: the response is not JSON`));
    }
  });

  it('rejects unknown names and bad base URLs', async () => {
    await expect(fetchBenchmark('mmlu', { dataDir: tmp() })).rejects.toThrow(UnsupportedError);
    await expect(fetchBenchmark('amc23', { dataDir: tmp(), baseUrl: 'ftp://mirror' })).rejects.toThrow(/http\(s\) URL/);
  });
});
