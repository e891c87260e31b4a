/**
 * Output folders checked before any work: a command that would fail to write its result only after hours of decoding
 * or training, or that would overwrite an earlier result without a word, refuses at once instead, in one line.
 */
import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InvalidInputError } from '../util/errors.js';

/**
 * `dir` can be created or written: no part of its path is a file, and the nearest existing folder is writable.
 * `option` names it as the user gave it (e.g. `-o`).
 */
export function checkWritableDir(dir: string, option: string): void {
  let p = resolve(dir);
  for (;;) {
    if (existsSync(p)) {
      if (!statSync(p).isDirectory()) {
        throw new InvalidInputError(p === resolve(dir) ? `${option} ${dir} is a file, not a folder: choose a folder` : `${option} ${dir}: ${p} is a file, so no folder can be made under it`);
      }
      try {
        accessSync(p, constants.W_OK | constants.X_OK);
      } catch {
        throw new InvalidInputError(`${option} ${dir}: ${p} is not writable: choose a folder you can write to`);
      }
      return;
    }
    const up = dirname(p);
    if (up === p) return;
    p = up;
  }
}

/**
 * Refuse to write a result into a folder that already holds one (`marker`, e.g. probe.json), unless `force`.
 * `what` names the result ("a probe").
 */
export function checkNoEarlierResult(dir: string, markers: readonly string[], what: string, option: string, force: boolean | undefined): void {
  if (force || !existsSync(dir) || !statSync(dir).isDirectory()) return;
  const files = readdirSync(dir);
  const found = markers.filter((m) => (m.endsWith('*') ? files.some((f) => f.startsWith(m.slice(0, -1))) : files.includes(m)));
  if (found.length > 0) {
    throw new InvalidInputError(`${option} ${dir} already holds ${what} (${found.map((m) => (m.endsWith('*') ? files.find((f) => f.startsWith(m.slice(0, -1))) : m)).join(', ')}): pass --force to overwrite it, or choose another folder`);
  }
}

/** The files that mark an evaluation's experiment or run folder (`lynx eval -o`). */
const EVAL_MARKERS = ['eval', 'predictions.jsonl', 'metrics.json', 'config.json'];

/** A dataset folder for build-dataset: new, empty, or a dataset (resumed) — never an eval run or another result. */
export function checkDatasetDir(dir: string, option: string): void {
  checkWritableDir(dir, option);
  if (!existsSync(dir)) return;
  const files = readdirSync(dir);
  if (files.length === 0 || files.includes('manifest.json')) return;
  const evalFiles = files.filter((f) => EVAL_MARKERS.includes(f));
  if (evalFiles.length > 0) {
    throw new InvalidInputError(`${option} ${dir} is an evaluation folder (${evalFiles.join(', ')}), not a dataset: build the dataset into a new folder`);
  }
  if (files.includes('probe.json') || files.includes('summary.json')) {
    throw new InvalidInputError(`${option} ${dir} holds a probe or rules (${files.filter((f) => f === 'probe.json' || f === 'summary.json').join(', ')}), not a dataset: build the dataset into a new folder`);
  }
  if (!files.some((f) => f.startsWith('chunk-') || f.startsWith('data-'))) {
    throw new InvalidInputError(`${option} ${dir} holds other files (${files.slice(0, 3).join(', ')}${files.length > 3 ? ', ...' : ''}) and no dataset: build into a new or empty folder`);
  }
}
