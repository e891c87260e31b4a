/** Evaluation: benchmarks, prompts, answer checking, run records, metrics and the runner. */
export * from './records.js';
export * from './benchmarks.js';
export * from './fetch.js';
export * from './prompts.js';
export * from './answer-extract.js';
export * from './answer-normalize.js';
export * from './answer-equiv.js';
export * from './symbolic.js';
export * from './metrics.js';
export * from './runner.js';
