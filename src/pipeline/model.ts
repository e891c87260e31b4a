/** The model a step runs: a GGUF file as is, or a Hugging Face folder converted once into the cache. */
import { existsSync, statSync } from 'node:fs';
import { LlamaModel } from '../engine/index.js';
import { resolveModel } from '../import/model-cache.js';
import { InvalidInputError } from '../util/errors.js';

/** The GGUF path of a model argument (converting a Hugging Face folder on first use). */
export async function resolveModelPath(arg: string): Promise<string> {
  if (!existsSync(arg)) throw new InvalidInputError(`model not found: ${arg}`);
  return statSync(arg).isDirectory() ? resolveModel(arg) : arg;
}

/** Load a model argument (GGUF file or Hugging Face folder). */
export async function openModel(arg: string): Promise<LlamaModel> {
  return LlamaModel.load(await resolveModelPath(arg));
}
