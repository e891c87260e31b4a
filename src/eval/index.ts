/** Evaluation: run records, metrics and the resumable runner. */
export * from './records.js';
export * from './metrics.js';
export * from './runner.js';
