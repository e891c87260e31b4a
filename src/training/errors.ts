import { LynxError } from '../util/errors.js';

/** Training could not start or failed inside ggml or llama.cpp; the message says why and what to change. */
export class TrainingError extends LynxError {}
