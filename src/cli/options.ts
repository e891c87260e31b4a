/**
 * Parsers for command-line option values, each with the allowed range in its error: every numeric option of `lynx`
 * goes through one of these, so a value out of range is refused before any work (exit code 2), never passed on to
 * llama.cpp (where 1,000 threads or a 10^9-token context hang or abort the process).
 */
import { InvalidArgumentError } from 'commander';
import { availableCores, maxThreads } from '../engine/threads.js';
import { UsageError } from '../util/errors.js';

/**
 * The largest token budget an option accepts: contexts are sized from it (several traces of it at once), and the
 * engine's largest context is 2^24 cells, so a larger budget could never be decoded.
 */
export const MAX_TOKEN_BUDGET = 2 ** 20;

const got = (value: string) => `got '${value}'`;

/** An integer in [min, max]. */
export function intOption(name: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = value.trim() === '' ? NaN : Number(value);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be ${intRange(min, max)}, ${got(value)}`);
    return n;
  };
}

function intRange(min: number, max: number): string {
  if (max < Number.MAX_SAFE_INTEGER && min > Number.MIN_SAFE_INTEGER) return `an integer from ${min} to ${max}`;
  if (min > Number.MIN_SAFE_INTEGER) return `an integer >= ${min}`;
  if (max < Number.MAX_SAFE_INTEGER) return `an integer <= ${max}`;
  return 'an integer';
}

export interface FloatBounds {
  /** Exclude the lower bound (x > min). */
  openMin?: boolean;
  /** Exclude the upper bound (x < max). */
  openMax?: boolean;
}

/** A finite number in [min, max] (or an open end, per `bounds`). Infinity and NaN are refused: no option means them. */
export function floatOption(name: string, min = -Infinity, max = Infinity, bounds: FloatBounds = {}) {
  return (value: string): number => checkFloat(name, value, min, max, bounds);
}

/** `value` (as typed) as a finite number in range, else InvalidArgumentError naming `name` and the range. */
export function checkFloat(name: string, value: string, min: number, max: number, bounds: FloatBounds = {}): number {
  const n = value.trim() === '' ? NaN : Number(value);
  const low = bounds.openMin ? n > min : n >= min;
  const high = bounds.openMax ? n < max : n <= max;
  if (!Number.isFinite(n) || !low || !high) throw new InvalidArgumentError(`${name} must be ${floatRange(min, max, bounds)}, ${got(value)}`);
  return n;
}

function floatRange(min: number, max: number, b: FloatBounds): string {
  if (Number.isFinite(min) && Number.isFinite(max)) return `a number in ${b.openMin ? '(' : '['}${min}, ${max}${b.openMax ? ')' : ']'}`;
  if (Number.isFinite(min)) return `a finite number ${b.openMin ? '>' : '>='} ${min}`;
  if (Number.isFinite(max)) return `a finite number ${b.openMax ? '<' : '<='} ${max}`;
  return 'a finite number';
}

/** A CPU thread count: 1 to 2 x the available cores (more only makes llama.cpp's spinning workers wait on each other). */
export function threadsOption(name = '--threads') {
  return (value: string): number => {
    const max = maxThreads();
    const n = value.trim() === '' ? NaN : Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer from 1 to ${max} (2 x the ${availableCores()} available cores), ${got(value)}`);
    }
    return n;
  };
}

/** A token budget: at least `min`, at most MAX_TOKEN_BUDGET. */
export function tokensOption(name: string, min = 1) {
  return intOption(name, min, MAX_TOKEN_BUDGET);
}

/** A sampling temperature: finite, >= 0 (0 = greedy). */
export function temperatureOption(name = '--temperature') {
  return floatOption(name, 0, Infinity);
}

/** A probability in [0, 1] (top-p, min-p, a share). */
export function probabilityOption(name: string, bounds: FloatBounds = {}) {
  return floatOption(name, 0, 1, bounds);
}

/** An error level δ: strictly between 0 and 1 (δ = 0 never exits, δ = 1 guarantees nothing). */
export function deltaOption(name = '--delta') {
  return floatOption(name, 0, 1, { openMin: true, openMax: true });
}

/** The numbers of a comma-separated list (`--delta 0.05,0.1`), each checked like `floatOption` or, with `integer`, `intOption`. */
export function numberListOption(name: string, min = -Infinity, max = Infinity, opts: FloatBounds & { integer?: boolean } = {}) {
  return (value: string): number[] => {
    const items = listOption(value);
    if (items.length === 0) throw new InvalidArgumentError(`${name} needs at least one value, ${got(value)}`);
    return items.map((x) =>
      opts.integer ? intOption(name, Number.isFinite(min) ? min : undefined, Number.isFinite(max) ? max : undefined)(x) : checkFloat(name, x, min, max, opts),
    );
  };
}

export function listOption(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * The numbers of list items already split (`--delta 0.05,0.1` as ['0.05', '0.1']), each checked for range; a
 * UsageError names the option, the item and the range.
 */
export function parseNumberList(xs: readonly string[] | undefined, name: string, min = -Infinity, max = Infinity, opts: FloatBounds & { integer?: boolean } = {}): number[] | undefined {
  if (xs === undefined) return undefined;
  try {
    return numberListOption(name, min, max, opts)(xs.join(','));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}
