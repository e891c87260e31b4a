/**
 * A Hugging Face byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json) as the GGUF `tokenizer.*`
 * metadata llama.cpp reads, following llama.cpp's own converter (`get_vocab_base`, `SpecialVocab`):
 *
 * - tokens: every id below config.vocab_size; ids the tokenizer lacks become `[PAD<id>]` (UNUSED), as the
 *   embedding matrix is usually padded beyond the tokenizer (Qwen: 151,936 rows, 151,665 tokens);
 * - token types: NORMAL for the BPE vocabulary; added tokens are CONTROL when `special` or when they look special
 *   (`<|…|>`, `<｜…｜>`), else USER_DEFINED (e.g. `<think>`);
 * - merges as "a b" strings; the pre-tokenizer name llama.cpp knows (`tokenizer.ggml.pre`);
 * - special token ids from tokenizer_config.json (then config.json), add_bos/add_eos, and the chat template.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidInputError, UnsupportedError } from '../util/errors.js';
import { readJson } from '../util/fs.js';
import { readSentencePieceModel, SP_TYPE } from './sentencepiece.js';
import { loadHfTokenizer } from './tokenizer.js';

export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface GgufVocab {
  /** 'gpt2' (byte-level BPE) or 'llama' (SentencePiece). */
  model: 'gpt2' | 'llama';
  pre?: string;
  tokens: string[];
  types: number[];
  scores?: number[];
  merges?: string[];
  special: Partial<Record<'bos' | 'eos' | 'unk' | 'sep' | 'pad' | 'cls' | 'mask' | 'eot', number>>;
  addBos?: boolean;
  addEos?: boolean;
  addSpacePrefix?: boolean;
  chatTemplate?: string;
}

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
  normalized?: boolean;
}

interface TokenizerJson {
  added_tokens?: AddedTokenJson[];
  normalizer?: { type: string } | null;
  pre_tokenizer?: Record<string, unknown> | null;
  post_processor?: Record<string, unknown> | null;
  decoder?: Record<string, unknown> | null;
  model: { type: string; vocab: Record<string, number>; merges?: (string | [string, string])[]; byte_fallback?: boolean; ignore_merges?: boolean };
}

/** The text llama.cpp's converter encodes to fingerprint a pre-tokenizer (`get_vocab_base_pre`). */
const CHKTXT =
  "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

/** sha256 of str(tokenizer.encode(CHKTXT)) → llama.cpp pre-tokenizer name, for the families we convert. */
const PRE_BY_HASH: Record<string, string> = {
  e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea: 'qwen2', // Qwen1.5 … Qwen2.5, QwQ
  d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c: 'qwen2', // Qwen3
  b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5: 'deepseek-r1-qwen', // R1-Distill-Qwen
  '0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5': 'llama-bpe', // Llama 3
  c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d: 'smaug-bpe',
  '3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454': 'gpt-2',
  '63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e': 'tekken',
};

/** Split regexes of the pre-tokenizers llama.cpp implements, for tokenizers whose fingerprint is not listed. */
const PRE_BY_REGEX: Record<string, string> = {
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": 'qwen2',
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": 'llama-bpe',
};

/** The pre-tokenizer names this converter may write (all of them llama.cpp implements). */
export const KNOWN_PRE_TOKENIZERS = [...new Set([...Object.values(PRE_BY_HASH), ...Object.values(PRE_BY_REGEX)])];

/** Whether an added token looks like a control token though not flagged special (llama.cpp `does_token_look_special`). */
function looksSpecial(text: string): boolean {
  return (
    ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(text) ||
    (text.startsWith('<|') && text.endsWith('|>')) ||
    (text.startsWith('<｜') && text.endsWith('｜>')) ||
    (text.startsWith('<unused') && text.endsWith('>'))
  );
}

export function readTokenizerJson(folder: string): TokenizerJson {
  const path = join(folder, 'tokenizer.json');
  if (!existsSync(path)) throw new InvalidInputError(`${folder} has no tokenizer.json (download it with the model; slow-only tokenizers are not supported)`);
  return readJson<TokenizerJson>(path);
}

export function readTokenizerConfig(folder: string): Record<string, unknown> {
  const path = join(folder, 'tokenizer_config.json');
  return existsSync(path) ? readJson<Record<string, unknown>>(path) : {};
}

/** The chat template of a folder: tokenizer_config.json, else chat_template.jinja, else chat_template.json. */
export function readChatTemplate(folder: string, tokenizerConfig = readTokenizerConfig(folder)): string | undefined {
  const t = tokenizerConfig.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    // A list of named templates: llama.cpp's default slot is the one named "default".
    const def = (t as { name: string; template: string }[]).find((x) => x.name === 'default');
    if (def) return def.template;
  }
  const jinja = join(folder, 'chat_template.jinja');
  if (existsSync(jinja)) return readFileSync(jinja, 'utf8');
  const json = join(folder, 'chat_template.json');
  if (existsSync(json)) {
    const v = readJson<{ chat_template?: unknown }>(json).chat_template;
    if (typeof v === 'string') return v;
  }
  return undefined;
}

/**
 * Build the GGUF vocabulary of a Hugging Face folder whose embedding matrix has `nVocab` rows: from
 * `tokenizer.model` (SentencePiece) when the folder has one, as llama.cpp's converter prefers, else from the
 * byte-level BPE `tokenizer.json`.
 */
export function hfVocabToGguf(folder: string, nVocab: number, config: Record<string, unknown> = {}): GgufVocab {
  if (existsSync(join(folder, 'tokenizer.model'))) return hfSentencePieceVocab(folder, nVocab, config);
  const tj = readTokenizerJson(folder);
  const tc = readTokenizerConfig(folder);
  const m = tj.model;
  if (m.type !== 'BPE' || m.byte_fallback) {
    throw new UnsupportedError(
      `${folder}/tokenizer.json: a ${m.type}${m.byte_fallback ? ' (SentencePiece-style, byte_fallback)' : ''} tokenizer converts only ` +
        'with its tokenizer.model (download tokenizer.model too); without it only byte-level BPE tokenizers (Llama 3, Qwen) convert',
    );
  }
  const added = tj.added_tokens ?? [];
  const byId = new Map<number, string>();
  for (const [text, id] of Object.entries(m.vocab)) byId.set(id, text);
  for (const a of added) byId.set(a.id, a.content);
  let maxId = -1;
  for (const id of byId.keys()) if (id > maxId) maxId = id;
  if (maxId >= nVocab) {
    throw new InvalidInputError(
      `${folder}: the tokenizer has token id ${maxId} but the model has only ${nVocab} embedding rows (config.json vocab_size): tokenizer.json does not belong to this model`,
    );
  }
  const addedById = new Map(added.map((a) => [a.id, a]));
  const tokens: string[] = new Array(nVocab);
  const types: number[] = new Array(nVocab);
  for (let i = 0; i < nVocab; i++) {
    const text = byId.get(i);
    const a = addedById.get(i);
    if (text === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TOKEN_TYPE.UNUSED;
    } else if (a) {
      if (a.special || looksSpecial(text)) {
        tokens[i] = text;
        types[i] = TOKEN_TYPE.CONTROL;
      } else {
        tokens[i] = text.replaceAll('\u2581', ' '); // llama.cpp pre-normalises user-defined spaces
        types[i] = TOKEN_TYPE.USER_DEFINED;
      }
    } else {
      tokens[i] = text;
      types[i] = TOKEN_TYPE.NORMAL;
    }
  }
  const merges = (m.merges ?? []).map((x) =>
    // Pair form (transformers ≥ 4.45) may hold spaces inside a part: llama.cpp expects them as U+0120 (Ġ).
    typeof x === 'string' ? x : x.map((part) => part.replaceAll(' ', '\u0120')).join(' '),
  );
  const vocab: GgufVocab = {
    model: 'gpt2',
    pre: detectPreTokenizer(folder, tj),
    tokens,
    types,
    merges,
    special: {},
    chatTemplate: readChatTemplate(folder, tc),
  };
  setSpecialTokens(vocab, tj, tc, config, nVocab);
  return vocab;
}

/**
 * llama.cpp names pre-tokenizers by a fingerprint: the token ids of CHKTXT. We compute it with the Hugging Face
 * tokenizer (so it also checks that tokenizer), then fall back to the split regex for unlisted variants.
 */
export function detectPreTokenizer(folder: string, tj: TokenizerJson = readTokenizerJson(folder)): string {
  try {
    const tok = loadHfTokenizer(folder);
    const ids = tok.encode(CHKTXT, { addSpecialTokens: true });
    const hash = createHash('sha256').update(`[${ids.join(', ')}]`).digest('hex');
    const byHash = PRE_BY_HASH[hash];
    if (byHash) return byHash;
  } catch {
    // fall through to the regex
  }
  const regexes: string[] = [];
  const visit = (p: Record<string, unknown> | null | undefined) => {
    if (!p) return;
    if (p.type === 'Sequence') for (const q of p.pretokenizers as Record<string, unknown>[]) visit(q);
    if (p.type === 'Split') regexes.push(((p.pattern as { Regex?: string }).Regex ?? '') as string);
  };
  visit(tj.pre_tokenizer);
  for (const r of regexes) {
    const name = PRE_BY_REGEX[r];
    if (name) {
      // R1-Distill-Qwen: Qwen's regex with DeepSeek's BOS; llama.cpp treats both alike.
      if (name === 'qwen2' && Object.values(tj.added_tokens ?? []).some((a) => a.content === '<｜begin▁of▁sentence｜>')) return 'deepseek-r1-qwen';
      return name;
    }
  }
  if (regexes.length === 0 && tj.pre_tokenizer?.type === 'ByteLevel' && (tj.pre_tokenizer as { use_regex?: boolean }).use_regex !== false) return 'gpt-2';
  throw new UnsupportedError(
    `${folder}/tokenizer.json: its pre-tokenizer is not one llama.cpp implements that this converter recognises ` +
      `(known: ${KNOWN_PRE_TOKENIZERS.join(', ')}); converting it anyway would tokenize differently from Hugging Face`,
  );
}

/**
 * A SentencePiece vocabulary (`tokenizer.model`) as llama.cpp's `_create_vocab_sentencepiece` writes it: ids the
 * model lacks are `[PAD<id>]` UNUSED with score -10000; piece types UNKNOWN/CONTROL/UNUSED/BYTE kept, everything
 * else NORMAL; added tokens (added_tokens.json, tokenizer_config.json's added_tokens_decoder) override with score
 * -1000, CONTROL when special or special-looking, else USER_DEFINED.
 */
export function hfSentencePieceVocab(folder: string, nVocab: number, config: Record<string, unknown> = {}): GgufVocab {
  const sp = readSentencePieceModel(join(folder, 'tokenizer.model'));
  if (sp.pieces.length > nVocab) {
    throw new InvalidInputError(
      `${folder}: tokenizer.model has ${sp.pieces.length} pieces but the model has only ${nVocab} embedding rows (config.json vocab_size): the tokenizer does not belong to this model`,
    );
  }
  const tokens = Array.from({ length: nVocab }, (_, i) => `[PAD${i}]`);
  const scores: number[] = new Array(nVocab).fill(-10000);
  const types: number[] = new Array(nVocab).fill(TOKEN_TYPE.UNUSED);
  sp.pieces.forEach((p, i) => {
    tokens[i] = p.piece;
    scores[i] = p.score;
    types[i] = [SP_TYPE.UNKNOWN, SP_TYPE.CONTROL, SP_TYPE.UNUSED, SP_TYPE.BYTE].includes(p.type as 2) ? p.type : TOKEN_TYPE.NORMAL;
  });
  const addedPath = join(folder, 'added_tokens.json');
  if (existsSync(addedPath)) {
    for (const [text, id] of Object.entries(readJson<Record<string, number>>(addedPath))) {
      if (id >= nVocab) continue;
      tokens[id] = text;
      scores[id] = -1000;
      types[id] = TOKEN_TYPE.USER_DEFINED;
    }
  }
  const tc = readTokenizerConfig(folder);
  for (const [key, t] of Object.entries((tc.added_tokens_decoder ?? {}) as Record<string, { content: string; special?: boolean }>)) {
    const id = Number(key);
    if (id >= nVocab) continue;
    const special = t.special || looksSpecial(t.content);
    tokens[id] = special ? t.content : t.content.replaceAll('\u2581', ' ');
    types[id] = special ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
    scores[id] = -1000;
  }
  const tj: TokenizerJson = existsSync(join(folder, 'tokenizer.json')) ? readTokenizerJson(folder) : { model: { type: 'none', vocab: {} } };
  const vocab: GgufVocab = { model: 'llama', pre: 'default', tokens, scores, types, special: {}, chatTemplate: readChatTemplate(folder, tc) };
  if (typeof tc.add_prefix_space === 'boolean') vocab.addSpacePrefix = tc.add_prefix_space;
  setSpecialTokens(vocab, tj, tc, config, nVocab);
  return vocab;
}

const SPECIAL_TYPES = ['bos', 'eos', 'unk', 'sep', 'pad', 'cls', 'mask'] as const;

/** Special token ids and add_bos/add_eos, as llama.cpp's SpecialVocab reads them. */
function setSpecialTokens(vocab: GgufVocab, tj: TokenizerJson, tc: Record<string, unknown>, config: Record<string, unknown>, nVocab: number): void {
  const contentOf = (entry: unknown): string | undefined =>
    typeof entry === 'string' ? entry : entry && typeof (entry as { content?: unknown }).content === 'string' ? (entry as { content: string }).content : undefined;
  const set = (typ: keyof GgufVocab['special'], id: unknown) => {
    if (typeof id !== 'number' || id < 0 || id >= nVocab || vocab.special[typ] !== undefined) return;
    vocab.special[typ] = id;
  };
  // A post-processor that prepends BOS means Hugging Face adds it (LlamaTokenizerFast's add_bos_token).
  const post = tj.post_processor;
  if (post) {
    const processors = (post.type === 'Sequence' ? (post.processors as Record<string, unknown>[]) : [post]) ?? [];
    for (const p of processors) {
      if (p.type !== 'TemplateProcessing') continue;
      const single = (p.single as Record<string, { id?: string }>[]) ?? [];
      if (single.length > 1) {
        const first = single[0]!.SpecialToken?.id;
        if (first) vocab.addBos = first === contentOf(tc.bos_token) || first === contentOf(tc.cls_token);
        const last = single[single.length - 1]!.SpecialToken?.id;
        if (last) vocab.addEos = last === contentOf(tc.eos_token);
      }
    }
  }
  for (const typ of SPECIAL_TYPES) {
    const add = tc[`add_${typ}_token`];
    if (typeof add === 'boolean' && (typ === 'bos' || typ === 'eos')) vocab[typ === 'bos' ? 'addBos' : 'addEos'] = add;
    const content = contentOf(tc[`${typ}_token`]);
    if (content !== undefined) set(typ, (tj.added_tokens ?? []).find((a) => a.content === content)?.id);
  }
  for (const typ of SPECIAL_TYPES) {
    const id = config[`${typ}_token_id`];
    set(typ, Array.isArray(id) ? undefined : id);
  }
}
