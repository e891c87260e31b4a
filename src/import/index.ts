/** Model import: Hugging Face folders and llama2.c checkpoints to GGUF, tokenizers, chat templates. See docs/model-import.md. */
export { convertToGguf, detectSource, ggufTensorName, permuteRowsForLlama, type ConvertOptions, type ConvertResult, type ConvertType } from './convert.js';
export { resolveModel, folderKey, CONVERTER_VERSION, type ResolveOptions } from './model-cache.js';
export { readHfConfig, parseHfConfig, SUPPORTED_ARCHITECTURES, type HfConfig, type RopeScaling } from './hf-config.js';
export { hfVocabToGguf, readChatTemplate, readTokenizerConfig, TOKEN_TYPE, type GgufVocab } from './hf-vocab.js';
export { HfTokenizer, loadHfTokenizer, type EncodeOptions } from './tokenizer.js';
export { ChatTemplate, opensThinking, type ChatMessage, type RenderOptions } from './chat-template.js';
export { SafetensorsFile, SafetensorsModel, writeSafetensors, writeSafetensorsSharded, type SafetensorsDtype, type SafetensorsInput } from '../formats/safetensors.js';
export { Llama2cCheckpoint, readLlama2cTokenizer, decodeLlama2c, type Llama2cConfig } from './llama2c.js';
