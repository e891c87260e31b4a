/** Generation on an OpenAI-compatible server (vLLM, SGLang, llama.cpp's llama-server, lynx serve), hidden states local. */
export { OpenAIGenerator, openAIGenerators } from './generator.js';
export { RemoteServer, rootOf, type RemoteOptions, type RemoteStats } from './remote.js';
export { RemoteServerError, VocabularyMismatchError } from './errors.js';
export { DEFAULT_RETRY, type RetryPolicy } from './retry.js';
export { TapContext } from './taps.js';
export type { ServerKind } from './dialect.js';
