/** The engine: llama.cpp through koffi. See docs/engine-api.md. */
export { loadLlama, llama, type Llama, type LoadLlamaOptions, type BackendChoice, type BackendName, type LogLevel } from '../native/library.js';
export { LlamaModel, type ModelInfo, type SpecialTokens, type LoadModelOptions, type LoadModelAsyncOptions } from './model.js';
export { LlamaContext, MAX_SEQUENCES, type ContextOptions, type TapLayer } from './context.js';
export {
  Sequence,
  type AppendOptions,
  type AppendResult,
  type GenerateOptions,
  type GeneratedToken,
  type StopOptions,
} from './sequence.js';
export { Sampler, logprobs, isGreedy, isStateful, checkSamplerOptions, type SamplerOptions, type TokenLogprob } from './sampler.js';
export { annealedTemperature, type AnnealingSchedule } from './annealing.js';
export { topHSelect, type TopHSelection } from './top-h.js';
export { availableCores, maxThreads, resolveThreads } from './threads.js';
export {
  AbiMismatchError,
  AbortError,
  BackendLoadError,
  ContextFullError,
  DecodeError,
  DisposedError,
  LynxEngineUsageError,
  ModelLoadError,
} from './errors.js';
export type { DepthExit } from './context.js';
export * from './speculative/index.js';
