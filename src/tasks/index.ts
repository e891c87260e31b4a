/** Tasks: benchmark problems and loaders, prompts, answer extraction and equivalence. */
export * from './problem.js';
export * from './benchmarks.js';
export * from './registry.js';
export * from './fetch.js';
export * from './prompts.js';
export * from './answer-extract.js';
export * from './answer-normalize.js';
export * from './answer-equiv.js';
export * from './symbolic.js';
