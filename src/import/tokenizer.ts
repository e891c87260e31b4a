/**
 * The Hugging Face tokenizer of a model folder (`tokenizer.json` + `tokenizer_config.json`) through
 * @huggingface/tokenizers: the reference tokenization the GGUF written for llama.cpp must reproduce.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InvalidInputError } from '../util/errors.js';

export interface EncodeOptions {
  /** Add what the tokenizer's post-processor adds (e.g. BOS for R1-Distill). Default false. */
  addSpecialTokens?: boolean;
}

export class HfTokenizer {
  private constructor(
    private readonly tok: Tokenizer,
    readonly folder: string,
    readonly config: Record<string, unknown>,
    /** Highest token id + 1 (base vocabulary and added tokens). */
    readonly size: number,
  ) {}

  static load(folder: string): HfTokenizer {
    const path = join(folder, 'tokenizer.json');
    if (!existsSync(path)) throw new InvalidInputError(`${folder} has no tokenizer.json`);
    let json: { model?: { vocab?: Record<string, number> | [string, number][] }; added_tokens?: { id: number }[] };
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new InvalidInputError(`${path} is not valid JSON: ${(e as Error).message}`);
    }
    const cfgPath = join(folder, 'tokenizer_config.json');
    let config: Record<string, unknown> = {};
    if (existsSync(cfgPath)) {
      try {
        config = JSON.parse(readFileSync(cfgPath, 'utf8'));
      } catch (e) {
        throw new InvalidInputError(`${cfgPath} is not valid JSON: ${(e as Error).message}`);
      }
    }
    const vocab = json.model?.vocab;
    const ids = Array.isArray(vocab) ? vocab.map((_, i) => i) : Object.values(vocab ?? {});
    const size = Math.max(-1, ...ids, ...(json.added_tokens ?? []).map((a) => a.id)) + 1;
    return new HfTokenizer(new Tokenizer(json, config), folder, config, size);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return this.tok.decode(ids as number[], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  /** Throw a clear error when the tokenizer has ids the model's embedding matrix (of `nVocab` rows) cannot hold. */
  checkVocabSize(nVocab: number, what = 'the model'): void {
    if (this.size > nVocab) {
      throw new InvalidInputError(
        `${this.folder}: the tokenizer has ${this.size} tokens but ${what} has only ${nVocab} embedding rows (vocab_size): tokenizer.json does not belong to this model`,
      );
    }
  }
}

const cache = new Map<string, HfTokenizer>();

/** Load (once per folder and process) the Hugging Face tokenizer of a model folder. */
export function loadHfTokenizer(folder: string): HfTokenizer {
  let t = cache.get(folder);
  if (!t) {
    t = HfTokenizer.load(folder);
    cache.set(folder, t);
  }
  return t;
}
