import { LynxError } from '../util/errors.js';

export { AbiMismatchError, BackendLoadError } from '../native/errors.js';

/** The model file is missing, not GGUF, truncated, or llama.cpp refused it. */
export class ModelLoadError extends LynxError {}


/** The context has no room left: no free sequence slot, or not enough KV cells for the request. */
export class ContextFullError extends LynxError {}

/** A sequence, context or model was used after dispose(). */
export class DisposedError extends LynxError {}

/** llama_decode failed for a reason other than a full KV cache. */
export class DecodeError extends LynxError {}

/** The engine API was used in a way it does not allow (empty append, truncate beyond the end, concurrent use). */
export class LynxEngineUsageError extends LynxError {}
