import { existsSync, statSync } from 'node:fs';
import { InvalidInputError } from '../util/errors.js';

/**
 * A `--model` argument: a GGUF file as is, or a Hugging Face folder converted once into the cache.
 */
export async function resolveModelPath(arg: string): Promise<string> {
  if (!existsSync(arg)) throw new InvalidInputError(`model not found: ${arg}`);
  if (statSync(arg).isDirectory()) {
    const { resolveModel } = await import('../import/model-cache.js');
    return resolveModel(arg);
  }
  return arg;
}
