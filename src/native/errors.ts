import { LynxError } from '../util/errors.js';

/** The loaded llama.cpp library does not have the struct layout this binding declares. */
export class AbiMismatchError extends LynxError {}

/** No llama.cpp build could be loaded (missing optional package, missing GPU driver for a forced backend, ...). */
export class BackendLoadError extends LynxError {}
