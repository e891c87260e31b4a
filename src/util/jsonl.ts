import { existsSync, readFileSync, openSync, writeSync, fsyncSync, closeSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { InvalidInputError } from './errors.js';

/** One line of a JSONL text: its 1-based number, its trimmed text and its parsed value. */
export interface JsonlLine {
  line: number;
  text: string;
  value: unknown;
}

/**
 * The lines of a JSONL text, blank ones skipped. A malformed line is an error naming `source:line`, unless `onBadLine`
 * is given (for example to skip a torn last line left by an interrupted writer).
 */
export function parseJsonlLines(text: string, source: string, opts: { onBadLine?: (line: number, text: string) => void } = {}): JsonlLine[] {
  const out: JsonlLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i]!.trim();
    if (t === '') continue;
    try {
      out.push({ line: i + 1, text: t, value: JSON.parse(t) });
    } catch (e) {
      if (opts.onBadLine) opts.onBadLine(i + 1, t);
      else throw new InvalidInputError(`${source}:${i + 1}: malformed JSON line (${(e as Error).message}): ${t.slice(0, 80)}`);
    }
  }
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A text file as UTF-8, refusing bytes that are not (a replacement character would silently change the data: a gold
 * answer "4\ufffd" never matches), with the error naming `path:line`.
 */
export function readUtf8File(path: string): string {
  const bytes = readFileSync(path);
  try {
    return utf8.decode(bytes);
  } catch {
    let line = 1;
    let start = 0;
    for (let i = 0; i <= bytes.length; i++) {
      if (i === bytes.length || bytes[i] === 0x0a) {
        try {
          utf8.decode(bytes.subarray(start, i));
        } catch {
          throw new InvalidInputError(`${path}:${line}: not valid UTF-8 text: convert the file to UTF-8 (e.g. iconv -t UTF-8)`);
        }
        line++;
        start = i + 1;
      }
    }
    throw new InvalidInputError(`${path}: not valid UTF-8 text`);
  }
}

/**
 * Read a JSONL file. A malformed line is an error naming the file and line number, unless `onBadLine` is given
 * (for example to skip a torn last line left by an interrupted writer).
 */
export function readJsonl<T = unknown>(path: string, opts: { onBadLine?: (line: number, text: string) => void } = {}): T[] {
  if (!existsSync(path)) throw new InvalidInputError(`file not found: ${path}`);
  return parseJsonlLines(readUtf8File(path), path, opts).map((l) => l.value as T);
}

/** Append records to a JSONL file, one line each, flushed to disk before returning. */
export function appendJsonl(path: string, records: readonly unknown[]): void {
  if (records.length === 0) return;
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'a');
  try {
    writeSync(fd, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
