import { LynxError } from '../util/errors.js';

export { AbiMismatchError, BackendLoadError } from '../native/errors.js';

/** The model file is missing, not GGUF, truncated, or llama.cpp refused it. */
export class ModelLoadError extends LynxError {}

/** The context has no room left: no free sequence slot, or not enough KV cells for the request. */
export class ContextFullError extends LynxError {}

/** A sequence, context or model was used after dispose() (its own, or that of the context or model owning it). */
export class DisposedError extends LynxError {}

/** llama_decode failed for a reason other than a full KV cache. */
export class DecodeError extends LynxError {}

/**
 * The engine API was used in a way it does not allow: an option out of its range, a token outside the vocabulary, an
 * empty append, a truncate beyond the end, two generations at once on one sequence.
 */
export class LynxEngineUsageError extends LynxError {}

/**
 * A load, append or generation was stopped through its AbortSignal. Named like the DOM's AbortError, so code that
 * checks `error.name === 'AbortError'` treats it the same; the signal's reason is the `cause`.
 */
export class AbortError extends LynxError {}

/** @internal Throw AbortError when `signal` is already aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, message: string): void {
  if (signal?.aborted) throw new AbortError(message, { cause: signal.reason });
}
