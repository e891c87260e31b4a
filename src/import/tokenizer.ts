/**
 * The Hugging Face tokenizer of a model folder (`tokenizer.json` + `tokenizer_config.json`) through
 * @huggingface/tokenizers: the reference tokenization the GGUF written for llama.cpp must reproduce.
 */
import { createHash } from 'node:crypto';
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
    const text = readFileSync(path, 'utf8');
    const cfgPath = join(folder, 'tokenizer_config.json');
    const cfgText = existsSync(cfgPath) ? readFileSync(cfgPath, 'utf8') : '{}';
    // Building a 150k-token BPE tokenizer takes a while; folders with identical files share one.
    const key = createHash('sha256').update(text).update('\0').update(cfgText).digest('hex');
    let built = built_.get(key);
    if (!built) {
      const json = parseJson<{ model?: { vocab?: Record<string, number> | [string, number][] }; added_tokens?: { id: number }[] }>(text, path);
      const config = parseJson<Record<string, unknown>>(cfgText, cfgPath);
      const vocab = json.model?.vocab;
      let size = Array.isArray(vocab) ? vocab.length : 0;
      if (!Array.isArray(vocab)) for (const id of Object.values(vocab ?? {})) if (id >= size) size = id + 1;
      for (const a of json.added_tokens ?? []) if (a.id >= size) size = a.id + 1;
      built = { tok: new Tokenizer(json, config), config, size };
      built_.set(key, built);
    }
    return new HfTokenizer(built.tok, folder, built.config, built.size);
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

const built_ = new Map<string, { tok: Tokenizer; config: Record<string, unknown>; size: number }>();

function parseJson<T>(text: string, path: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new InvalidInputError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** The Hugging Face tokenizer of a model folder (built once per distinct tokenizer.json in a process). */
export function loadHfTokenizer(folder: string): HfTokenizer {
  return HfTokenizer.load(folder);
}
