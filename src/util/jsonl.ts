import { existsSync, readFileSync, openSync, writeSync, fsyncSync, closeSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { InvalidInputError } from './errors.js';

/**
 * Read a JSONL file. A malformed line is an error naming the file and line number, unless `onBadLine` is given
 * (for example to skip a torn last line left by an interrupted writer).
 */
export function readJsonl<T = unknown>(path: string, opts: { onBadLine?: (line: number, text: string) => void } = {}): T[] {
  if (!existsSync(path)) throw new InvalidInputError(`file not found: ${path}`);
  const out: T[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!.trim();
    if (text === '') continue;
    try {
      out.push(JSON.parse(text) as T);
    } catch (e) {
      if (opts.onBadLine) opts.onBadLine(i + 1, text);
      else throw new InvalidInputError(`${path}:${i + 1}: malformed JSON line (${(e as Error).message}): ${text.slice(0, 80)}`);
    }
  }
  return out;
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
