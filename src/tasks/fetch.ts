/**
 * `lynx data fetch NAME`: download a benchmark from its canonical public location, convert it to the layout the
 * loaders read (the one of ../shared/data), verify it, and write it atomically into the data folder.
 *
 * Sources:
 * - GSM8K: the raw JSONL files of github.com/openai/grade-school-math (already in the loaders' layout), verified
 *   by record count, fields and sha256.
 * - MATH, MATH-500, AIME 2024, AMC 2023, CommonsenseQA: Hugging Face datasets read through the dataset viewer's
 *   `/rows` JSON API (datasets-server.huggingface.co), 100 rows per request. It serves every public dataset
 *   the Hub has converted to parquet as plain JSON, so no parquet reader is needed; rows that the API reports as
 *   truncated are rejected. These files are verified by record count and fields; their sha256 is recorded in
 *   `SOURCE.json` beside them (the Hub can re-export rows, so there is no fixed hash to check against).
 *
 * Nothing is written unless every file of the benchmark downloaded and verified.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { InvalidInputError, LynxError, UnsupportedError } from '../util/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { dataDir as defaultDataDir } from '../util/paths.js';
import { MATH_SUBSETS } from './benchmarks.js';

export const GITHUB_RAW = 'https://raw.githubusercontent.com';
export const HF_DATASETS_SERVER = 'https://datasets-server.huggingface.co';

/** A download failed or did not verify. */
export class FetchError extends LynxError {}

type Row = Record<string, unknown>;

interface RawFile {
  path: string; // under GITHUB_RAW
  out: string; // under the data folder
  records: number;
  sha256: string;
  fields: string[];
}

interface HfPart {
  dataset: string;
  /** config name, or undefined for the dataset's only/default config */
  config?: string;
  /** preferred split names, first found wins */
  splits: string[];
}

interface HfFile {
  out: string;
  records: number;
  parts: HfPart[];
  /** converts one API row (with its row index and part) into the loaders' record */
  convert: (row: Row, rowIdx: number, part: HfPart) => Row;
  fields: string[];
}

interface Source {
  description: string;
  raw?: RawFile[];
  hf?: HfFile[];
}

function str(row: Row, names: string[], what: string): string {
  for (const n of names) {
    const v = row[n];
    if (typeof v === 'string') return v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  }
  throw new FetchError(`a ${what} row has no ${names.join('/')} field (columns: ${Object.keys(row).join(', ')})`);
}

const mathConvert =
  (split: string) =>
  (row: Row, rowIdx: number, part: HfPart): Row => ({
    problem: str(row, ['problem'], 'MATH'),
    level: str(row, ['level'], 'MATH'),
    type: str(row, ['type'], 'MATH'),
    solution: str(row, ['solution'], 'MATH'),
    // The Hub rows do not carry the original file numbers; the row index stands in for them.
    unique_id: `${split}/${part.config}/${rowIdx}.json`,
  });

export const SOURCES: Record<string, Source> = {
  gsm8k: {
    description: 'GSM8K (openai/grade-school-math on GitHub)',
    raw: (['test', 'train'] as const).map((split) => ({
      path: `/openai/grade-school-math/master/grade_school_math/data/${split}.jsonl`,
      out: `gsm8k/${split}.jsonl`,
      records: split === 'test' ? 1319 : 7473,
      sha256:
        split === 'test'
          ? '3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14'
          : '17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465',
      fields: ['question', 'answer'],
    })),
  },
  math: {
    description: 'Hendrycks MATH (Hugging Face EleutherAI/hendrycks_math, one config per subject)',
    hf: (['train', 'test'] as const).map((split) => ({
      out: `math/${split}.jsonl`,
      records: split === 'train' ? 7500 : 5000,
      parts: MATH_SUBSETS.map((config) => ({ dataset: 'EleutherAI/hendrycks_math', config, splits: [split] })),
      convert: mathConvert(split),
      fields: ['problem', 'level', 'type', 'solution', 'unique_id'],
    })),
  },
  math500: {
    description: 'MATH-500 (Hugging Face HuggingFaceH4/MATH-500)',
    hf: [
      {
        out: 'math500/test.jsonl',
        records: 500,
        parts: [{ dataset: 'HuggingFaceH4/MATH-500', splits: ['test'] }],
        convert: (row) => ({
          problem: str(row, ['problem'], 'MATH-500'),
          solution: str(row, ['solution'], 'MATH-500'),
          answer: str(row, ['answer'], 'MATH-500'),
          subject: str(row, ['subject'], 'MATH-500'),
          level: row.level,
          unique_id: str(row, ['unique_id'], 'MATH-500'),
        }),
        fields: ['problem', 'solution', 'answer', 'subject', 'level', 'unique_id'],
      },
    ],
  },
  aime24: {
    description: 'AIME 2024 (Hugging Face Maxwell-Jia/AIME_2024)',
    hf: [
      {
        out: 'aime24/test.jsonl',
        records: 30,
        parts: [{ dataset: 'Maxwell-Jia/AIME_2024', splits: ['train', 'test'] }],
        convert: (row, idx) => ({
          id: row.ID ?? row.id ?? idx,
          problem: str(row, ['Problem', 'problem'], 'AIME 2024'),
          solution: row.Solution ?? row.solution ?? '',
          answer: str(row, ['Answer', 'answer'], 'AIME 2024'),
        }),
        fields: ['id', 'problem', 'answer'],
      },
    ],
  },
  amc23: {
    description: 'AMC 2023 (Hugging Face knoveleng/AMC-23)',
    hf: [
      {
        out: 'amc23/test.jsonl',
        records: 40,
        parts: [{ dataset: 'knoveleng/AMC-23', splits: ['train', 'test'] }],
        convert: (row, idx) => {
          const answer = row.answer ?? row.Answer;
          if (typeof answer !== 'number' && typeof answer !== 'string')
            throw new FetchError(`an AMC 2023 row has no answer (columns: ${Object.keys(row).join(', ')})`);
          return {
            id: row.id ?? idx,
            problem: str(row, ['problem', 'question', 'Problem'], 'AMC 2023'),
            answer,
            ...(typeof row.url === 'string' ? { url: row.url } : {}),
          };
        },
        fields: ['id', 'problem', 'answer'],
      },
    ],
  },
  commonsenseqa: {
    description: 'CommonsenseQA dev (Hugging Face tau/commonsense_qa, validation split)',
    hf: [
      {
        out: 'commonsenseqa/dev_rand_split.jsonl',
        records: 1221,
        parts: [{ dataset: 'tau/commonsense_qa', splits: ['validation'] }],
        convert: (row) => {
          const choices = row.choices as { label?: unknown; text?: unknown } | undefined;
          if (!choices || !Array.isArray(choices.label) || !Array.isArray(choices.text) || choices.label.length !== choices.text.length)
            throw new FetchError('a CommonsenseQA row has no choices {label: [...], text: [...]}');
          return {
            answerKey: str(row, ['answerKey'], 'CommonsenseQA'),
            id: str(row, ['id'], 'CommonsenseQA'),
            question: {
              question_concept: row.question_concept ?? '',
              choices: choices.label.map((label, i) => ({ label: String(label), text: String((choices.text as unknown[])[i]) })),
              stem: str(row, ['question'], 'CommonsenseQA'),
            },
          };
        },
        fields: ['answerKey', 'id', 'question'],
      },
    ],
  },
};

export interface FetchOptions {
  /** data folder to write into; default `dataDir()` */
  dataDir?: string;
  /** one origin standing in for both GitHub raw and the Hugging Face dataset viewer (tests, mirrors) */
  baseUrl?: string;
  githubBase?: string;
  hfBase?: string;
  /** check sha256 where a stable hash is known (default true) */
  verifyHash?: boolean;
  /** attempts per request for 429/5xx/network errors (default 5) */
  retries?: number;
  /** first back-off delay in ms, doubled per attempt (default 1000) */
  retryDelayMs?: number;
  fetchImpl?: typeof fetch;
  onProgress?: (message: string) => void;
}

export interface FetchResult {
  name: string;
  files: { path: string; records: number; sha256: string; source: string }[];
}

function sha256(data: string): string {
  return createHash('sha256').update(data, 'utf8').digest('hex');
}

async function httpGet(url: string, opts: FetchOptions): Promise<string> {
  const f = opts.fetchImpl ?? fetch;
  const attempts = Math.max(1, opts.retries ?? 5);
  let delay = opts.retryDelayMs ?? 1000;
  let last = '';
  for (let i = 0; i < attempts; i++) {
    let res: Response;
    try {
      res = await f(url);
    } catch (e) {
      last = `network error: ${(e as Error).message}`;
      await sleep(delay);
      delay *= 2;
      continue;
    }
    if (res.ok) return await res.text();
    last = `HTTP ${res.status} ${res.statusText}`;
    if (res.status !== 429 && res.status < 500) break;
    const retryAfter = Number(res.headers.get('retry-after'));
    await sleep(Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter * 1000, 60_000) : delay);
    delay *= 2;
  }
  throw new FetchError(`download failed: ${url}: ${last}. Check the network (or --base-url), then run 'lynx data fetch' again.`);
}

/** `httpGet` of a JSON document (the datasets-server API); a body that is not JSON is a FetchError naming the URL. */
async function httpGetJson<T>(url: string, opts: FetchOptions): Promise<T> {
  try {
    return JSON.parse(await httpGet(url, opts)) as T;
  } catch (e) {
    if (e instanceof FetchError) throw e;
    throw new FetchError(`${url}: the response is not JSON`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function verifyRecords(records: Row[], file: { out: string; records: number; fields: string[] }, source: string): void {
  if (records.length !== file.records)
    throw new FetchError(`${source}: expected ${file.records} records for ${file.out}, got ${records.length}; nothing was written`);
  records.forEach((r, i) => {
    for (const f of file.fields)
      if (r[f] === undefined || r[f] === null)
        throw new FetchError(`${source}: record ${i + 1} of ${file.out} lacks the field "${f}"; nothing was written`);
  });
}

async function fetchRaw(file: RawFile, base: string, opts: FetchOptions): Promise<{ text: string; source: string }> {
  const url = base + file.path;
  opts.onProgress?.(`downloading ${url}`);
  const text = await httpGet(url, opts);
  const records = text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as Row;
      } catch {
        throw new FetchError(`${url}: line ${i + 1} is not JSON; nothing was written`);
      }
    });
  verifyRecords(records, file, url);
  if (opts.verifyHash !== false && sha256(text) !== file.sha256)
    throw new FetchError(
      `${url}: sha256 ${sha256(text)} differs from the known ${file.sha256}; the upstream file changed or was corrupted. ` +
        `Nothing was written (pass verifyHash: false / --no-verify-hash to accept it after checking it).`,
    );
  return { text, source: url };
}

interface SplitsResponse {
  splits?: { config: string; split: string }[];
}

interface RowsResponse {
  rows?: { row_idx: number; row: Row; truncated_cells?: string[] }[];
  num_rows_total?: number;
}

async function resolveSplit(part: HfPart, base: string, opts: FetchOptions): Promise<{ config: string; split: string }> {
  const url = `${base}/splits?dataset=${encodeURIComponent(part.dataset)}`;
  const parsed = await httpGetJson<SplitsResponse>(url, opts);
  const all = parsed.splits ?? [];
  const configs = [...new Set(all.map((s) => s.config))];
  const config = part.config ?? (configs.includes('default') ? 'default' : configs.length === 1 ? configs[0] : undefined);
  if (config === undefined || !configs.includes(config))
    throw new FetchError(`${part.dataset}: config ${part.config ?? 'default'} not found (have ${configs.join(', ') || 'none'})`);
  const splits = all.filter((s) => s.config === config).map((s) => s.split);
  const split = part.splits.find((s) => splits.includes(s));
  if (!split) throw new FetchError(`${part.dataset}/${config}: none of the splits ${part.splits.join(', ')} (have ${splits.join(', ')})`);
  return { config, split };
}

async function fetchHfPart(part: HfPart, base: string, opts: FetchOptions): Promise<{ rows: { idx: number; row: Row }[]; source: string }> {
  const { config, split } = await resolveSplit(part, base, opts);
  const q = `dataset=${encodeURIComponent(part.dataset)}&config=${encodeURIComponent(config)}&split=${encodeURIComponent(split)}`;
  const rows: { idx: number; row: Row }[] = [];
  let total = Infinity;
  for (let offset = 0; offset < total; offset += 100) {
    const url = `${base}/rows?${q}&offset=${offset}&length=100`;
    const page = await httpGetJson<RowsResponse>(url, opts);
    if (!Array.isArray(page.rows) || typeof page.num_rows_total !== 'number')
      throw new FetchError(`${url}: unexpected response (no rows / num_rows_total)`);
    total = page.num_rows_total;
    for (const r of page.rows) {
      if (r.truncated_cells && r.truncated_cells.length > 0)
        throw new FetchError(`${part.dataset}/${config}/${split} row ${r.row_idx}: the API truncated ${r.truncated_cells.join(', ')}`);
      rows.push({ idx: r.row_idx, row: r.row });
    }
    if (page.rows.length === 0) break;
    opts.onProgress?.(`${part.dataset}/${config}/${split}: ${rows.length}/${total}`);
  }
  rows.sort((a, b) => a.idx - b.idx);
  if (rows.length !== total || rows.some((r, i) => r.idx !== i))
    throw new FetchError(`${part.dataset}/${config}/${split}: got ${rows.length} of ${total} rows; nothing was written`);
  return { rows, source: `${part.dataset} (config ${config}, split ${split})` };
}

async function fetchHf(file: HfFile, base: string, opts: FetchOptions): Promise<{ text: string; source: string }> {
  const records: Row[] = [];
  const sources: string[] = [];
  for (const part of file.parts) {
    const { rows, source } = await fetchHfPart(part, base, opts);
    const resolved = { ...part, config: part.config ?? 'default' };
    for (const { idx, row } of rows) records.push(file.convert(row, idx, resolved));
    sources.push(source);
  }
  verifyRecords(records, file, file.parts[0]!.dataset);
  return { text: records.map((r) => JSON.stringify(r)).join('\n') + '\n', source: sources.join('; ') };
}

export function fetchableBenchmarks(): string[] {
  return Object.keys(SOURCES);
}

/** Download, convert, verify and store one benchmark. */
export async function fetchBenchmark(name: string, opts: FetchOptions = {}): Promise<FetchResult> {
  const src = SOURCES[name];
  if (!src) throw new UnsupportedError(`cannot fetch "${name}"; known benchmarks: ${fetchableBenchmarks().join(', ')}`);
  const root = defaultDataDir(opts.dataDir);
  const strip = (u: string) => u.replace(/\/+$/, '');
  const gh = strip(opts.githubBase ?? opts.baseUrl ?? GITHUB_RAW);
  const hf = strip(opts.hfBase ?? opts.baseUrl ?? HF_DATASETS_SERVER);
  if (opts.baseUrl !== undefined && !/^https?:\/\//.test(opts.baseUrl))
    throw new InvalidInputError(`--base-url must be an http(s) URL, got ${opts.baseUrl}`);

  // Everything is downloaded and verified before anything is written.
  const ready: { out: string; text: string; source: string; records: number }[] = [];
  for (const f of src.raw ?? []) ready.push({ out: f.out, records: f.records, ...(await fetchRaw(f, gh, opts)) });
  for (const f of src.hf ?? []) ready.push({ out: f.out, records: f.records, ...(await fetchHf(f, hf, opts)) });

  const files = ready.map((r) => ({ path: r.out, records: r.records, sha256: sha256(r.text), source: r.source }));
  for (const r of ready) writeFileAtomic(join(root, r.out), r.text);
  const folder = ready[0]!.out.split('/')[0]!;
  writeJsonAtomic(join(root, folder, 'SOURCE.json'), {
    benchmark: name,
    description: src.description,
    fetchedAt: new Date().toISOString(),
    files,
  });
  opts.onProgress?.(`${name}: wrote ${files.map((f) => `${f.path} (${f.records})`).join(', ')}`);
  return { name, files };
}
