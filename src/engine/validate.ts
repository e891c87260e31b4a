/**
 * Range checks for what a caller hands the engine. llama.cpp answers many bad values with an abort (GGML_ASSERT,
 * std::out_of_range) that kills the process, so they are refused here, in TypeScript, with the allowed range.
 */
import { LynxEngineUsageError } from './errors.js';

/** `value` must be an integer in [min, max]; `what` names it as the caller wrote it (e.g. "nCtx"). */
export function checkInteger(what: string, value: unknown, min: number, max: number, hint = ''): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
    throw new LynxEngineUsageError(`${what} must be ${range}, got ${describe(value)}${hint ? `: ${hint}` : ''}`);
  }
  return value;
}

/** `value` must be a finite number in [min, max]. */
export function checkNumber(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    const range = max === Infinity ? `a number >= ${min}` : `a number from ${min} to ${max}`;
    throw new LynxEngineUsageError(`${what} must be ${range}, got ${describe(value)}`);
  }
  return value;
}

/** `value` must be one of `allowed`. */
export function checkChoice<T>(what: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw new LynxEngineUsageError(`${what} must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${describe(value)}`);
  }
  return value as T;
}

/** Every id must be a token of a vocabulary of `nVocab` tokens; llama.cpp aborts the process on one that is not. */
export function checkTokens(what: string, tokens: readonly number[], nVocab: number): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= nVocab) {
      throw new LynxEngineUsageError(`${what}: token ${describe(t)} at index ${i} is not in the vocabulary (ids 0 to ${nVocab - 1})`);
    }
  }
}

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === undefined || value === null) return String(value);
  return typeof value;
}
