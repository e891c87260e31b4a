import { LynxError } from '../util/errors.js';

/** ggml could not set up or run a graph (no backend, an allocation failed, a computation failed). */
export class GraphError extends LynxError {}
