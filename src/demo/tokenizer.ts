/**
 * The demo model's tokenizer: a byte-level BPE (GPT-2 style) trained by this file on demo traces, with R1-Distill's
 * special tokens and chat template. It exists three times and all three must agree token for token:
 *
 * - here, in TypeScript (`DemoTokenizer.encode`), for building the training corpus;
 * - in the GGUF (`writeTokenizerToGguf`): `tokenizer.ggml.model = gpt2` with llama.cpp's `qwen2` pre-tokenizer;
 * - as a Hugging Face `tokenizer.json` (`toHfTokenizerJson`) that @huggingface/tokenizers loads.
 *
 * The `qwen2` pre-tokenizer splits every digit into its own piece, so numbers are always spelled digit by digit:
 * the model sees the same symbols for a number wherever it occurs, which is what exact arithmetic needs. All 256 byte
 * tokens are in the vocabulary, so any text encodes and decodes back exactly.
 */
import { join } from 'node:path';
import type { GgufWriter } from '../formats/gguf/writer.js';
import { InvalidInputError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/fs.js';

/** R1-Distill-Qwen's special tokens (and its pad token). */
export const SPECIAL = {
  bos: '<｜begin▁of▁sentence｜>',
  eos: '<｜end▁of▁sentence｜>',
  user: '<｜User｜>',
  assistant: '<｜Assistant｜>',
  thinkStart: '<think>',
  thinkEnd: '</think>',
  pad: '<｜▁pad▁｜>',
} as const;

/** llama.cpp token types (llama_token_type). */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/**
 * Special tokens in id order after the merges. As in R1-Distill-Qwen, BOS/EOS/pad are control tokens (special in
 * Hugging Face terms) while the turn markers and think tags are user-defined (added, not special): llama.cpp matches
 * user-defined tokens in text even without `parse_special`, like Hugging Face matches added tokens.
 */
const SPECIAL_ORDER: readonly { key: keyof typeof SPECIAL; type: number }[] = [
  { key: 'eos', type: TOKEN_TYPE.control },
  { key: 'bos', type: TOKEN_TYPE.control },
  { key: 'pad', type: TOKEN_TYPE.control },
  { key: 'user', type: TOKEN_TYPE.userDefined },
  { key: 'assistant', type: TOKEN_TYPE.userDefined },
  { key: 'thinkStart', type: TOKEN_TYPE.userDefined },
  { key: 'thinkEnd', type: TOKEN_TYPE.userDefined },
];

/** llama.cpp's `tokenizer.ggml.pre` value whose regex `PRETOKENIZE` reproduces. */
export const PRE_TOKENIZER = 'qwen2';

/** The qwen2 pre-tokenizer as Qwen2's tokenizer.json writes it (Oniguruma syntax, for Hugging Face). */
export const QWEN2_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** The same regex in JavaScript (llama.cpp's adapted form: the case-insensitive group spelled out). */
const PRETOKENIZE = /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/**
 * R1-Distill's chat template, reduced to what the demo needs: BOS, user turns, assistant turns with the thinking
 * stripped from history, and the generation prompt `<｜Assistant｜><think>\n`.
 */
export const CHAT_TEMPLATE =
  "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}" +
  '{{ bos_token }}' +
  "{% for message in messages %}" +
  "{% if message['role'] == 'system' %}{{ message['content'] }}" +
  "{% elif message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}" +
  "{% elif message['role'] == 'assistant' %}{% set content = message['content'] %}" +
  "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}" +
  "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}" +
  '{% endif %}{% endfor %}' +
  "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}";

/** GPT-2's byte-to-unicode table: a printable character standing for every byte, as byte-level BPE stores tokens. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + extra++);
    }
  }
  const table: string[] = new Array(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i]!)));
  return table;
})();

const CHAR_TO_BYTE = new Map<string, number>(BYTE_TO_CHAR.map((c, b) => [c, b]));
const utf8 = new TextEncoder();

/** Text as its byte-level symbols (one character per UTF-8 byte). */
export function toByteLevel(text: string): string {
  let out = '';
  for (const byte of utf8.encode(text)) out += BYTE_TO_CHAR[byte]!;
  return out;
}

export function fromByteLevel(symbols: string): Uint8Array {
  const out: number[] = [];
  for (const ch of symbols) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b === undefined) throw new Error(`not a byte-level symbol: ${JSON.stringify(ch)}`);
    out.push(b);
  }
  return Uint8Array.from(out);
}

/** Split text into pre-tokens as llama.cpp's qwen2 pre-tokenizer does (no special tokens in `text`). */
export function preTokenize(text: string): string[] {
  return text.match(PRETOKENIZE) ?? [];
}

export interface TokenizerSpec {
  /** Merges in rank order, each as two byte-level symbols. */
  merges: readonly (readonly [string, string])[];
}

export interface BpeTrainOptions {
  /** Total vocabulary size including the 256 byte tokens and the special tokens. Default 768. */
  vocabSize?: number;
  /** Stop merging when the best pair occurs fewer times. Default 2. */
  minFrequency?: number;
}

/**
 * Learn BPE merges from texts (special tokens are cut out first and never merged). Deterministic: the most frequent
 * adjacent pair wins, ties go to the pair that sorts first.
 */
export function trainBpe(texts: Iterable<string>, opts: BpeTrainOptions = {}): TokenizerSpec {
  const vocabSize = opts.vocabSize ?? 768;
  const minFrequency = opts.minFrequency ?? 2;
  const nMerges = vocabSize - 256 - SPECIAL_ORDER.length;
  if (!Number.isInteger(vocabSize) || nMerges < 0) {
    throw new InvalidInputError(`vocabulary size ${vocabSize} is too small: it needs at least ${256 + SPECIAL_ORDER.length} tokens`);
  }
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const part of splitSpecial(text, true)) {
      if (part.special !== undefined) continue;
      for (const piece of preTokenize(part.text)) {
        const key = toByteLevel(piece);
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
  }
  // Words as symbol arrays with their counts; sorted so that the result never depends on Map order.
  const words = [...counts.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([w, c]) => ({ symbols: [...w], count: c }));
  const merges: [string, string][] = [];
  while (merges.length < nMerges) {
    const pairs = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.symbols.length; i++) {
        const key = `${w.symbols[i]}\u0000${w.symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + w.count);
      }
    }
    let best: string | null = null;
    let bestCount = 0;
    for (const [key, c] of pairs) {
      if (c > bestCount || (c === bestCount && best !== null && key < best)) {
        best = key;
        bestCount = c;
      }
    }
    if (best === null || bestCount < minFrequency) break;
    const [a, b] = best.split('\u0000') as [string, string];
    merges.push([a, b]);
    const merged = a + b;
    for (const w of words) {
      const s = w.symbols;
      const out: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(merged);
          i++;
        } else out.push(s[i]!);
      }
      w.symbols = out;
    }
  }
  return { merges };
}

interface Part {
  text: string;
  /** Token id when this part is a special token. */
  special?: number;
}

/** Split text at special tokens (longest first). Without `parseSpecial`, only user-defined ones are split (as llama.cpp). */
function splitSpecial(text: string, parseSpecial: boolean, ids?: ReadonlyMap<string, { id: number; type: number }>): Part[] {
  const table = ids ?? new Map(SPECIAL_ORDER.map((s, i) => [SPECIAL[s.key], { id: -1 - i, type: s.type }]));
  const specials = [...table.entries()]
    .filter(([, v]) => parseSpecial || v.type === TOKEN_TYPE.userDefined)
    .sort((a, b) => b[0].length - a[0].length);
  const parts: Part[] = [];
  let rest = text;
  while (rest.length > 0) {
    let at = -1;
    let which: [string, { id: number }] | null = null;
    for (const s of specials) {
      const i = rest.indexOf(s[0]);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        which = s;
      }
    }
    if (!which) {
      parts.push({ text: rest });
      break;
    }
    if (at > 0) parts.push({ text: rest.slice(0, at) });
    parts.push({ text: which[0], special: which[1].id });
    rest = rest.slice(at + which[0].length);
  }
  return parts;
}

export interface EncodeOptions {
  /** Put BOS first (as llama.cpp's `add_special` with `add_bos_token`). Default false. */
  addBos?: boolean;
  /** Turn control tokens written in the text into their ids (user-defined ones always are). Default true. */
  parseSpecial?: boolean;
}

/** A trained byte-level BPE tokenizer with the demo's special tokens. */
export class DemoTokenizer {
  /** Token strings by id (byte-level symbols; special tokens as their text). */
  readonly tokens: readonly string[];
  /** llama.cpp token types by id. */
  readonly types: readonly number[];
  readonly merges: readonly (readonly [string, string])[];
  readonly bos: number;
  readonly eos: number;
  readonly pad: number;
  readonly user: number;
  readonly assistant: number;
  readonly thinkStart: number;
  readonly thinkEnd: number;
  private readonly ids = new Map<string, number>();
  private readonly ranks = new Map<string, number>();
  private readonly specialIds = new Map<string, { id: number; type: number }>();
  private readonly cache = new Map<string, number[]>();

  constructor(spec: TokenizerSpec) {
    const tokens: string[] = [...BYTE_TO_CHAR];
    const types: number[] = tokens.map(() => TOKEN_TYPE.normal);
    spec.merges.forEach(([a, b], rank) => {
      if (![...a].every((c) => CHAR_TO_BYTE.has(c)) || ![...b].every((c) => CHAR_TO_BYTE.has(c))) {
        throw new InvalidInputError(`merge ${rank} ("${a} ${b}") is not made of byte-level symbols`);
      }
      this.ranks.set(`${a} ${b}`, rank);
      tokens.push(a + b);
      types.push(TOKEN_TYPE.normal);
    });
    if (new Set(tokens).size !== tokens.length) throw new InvalidInputError('the merges produce the same token twice');
    for (const s of SPECIAL_ORDER) {
      this.specialIds.set(SPECIAL[s.key], { id: tokens.length, type: s.type });
      tokens.push(SPECIAL[s.key]);
      types.push(s.type);
    }
    tokens.forEach((t, i) => this.ids.set(t, i));
    this.tokens = tokens;
    this.types = types;
    this.merges = spec.merges.map(([a, b]) => [a, b] as const);
    const id = (k: keyof typeof SPECIAL) => this.specialIds.get(SPECIAL[k])!.id;
    this.bos = id('bos');
    this.eos = id('eos');
    this.pad = id('pad');
    this.user = id('user');
    this.assistant = id('assistant');
    this.thinkStart = id('thinkStart');
    this.thinkEnd = id('thinkEnd');
  }

  get vocabSize(): number {
    return this.tokens.length;
  }

  /** Id of a token string (byte-level form, or a special token's text). */
  tokenId(token: string): number | undefined {
    return this.ids.get(token);
  }

  isSpecial(id: number): boolean {
    return this.types[id] === TOKEN_TYPE.control || this.types[id] === TOKEN_TYPE.userDefined;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = opts.addBos ? [this.bos] : [];
    for (const part of splitSpecial(text, opts.parseSpecial ?? true, this.specialIds)) {
      if (part.special !== undefined) out.push(part.special);
      else for (const piece of preTokenize(part.text)) out.push(...this.encodePiece(piece));
    }
    return out;
  }

  /** Token ids and the character span of each (UTF-16 offsets into `text`; a token inside a multi-byte character
   * gets that character's span). */
  encodeWithOffsets(text: string, opts: EncodeOptions = {}): { ids: number[]; starts: number[]; ends: number[] } {
    const ids: number[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    if (opts.addBos) {
      ids.push(this.bos);
      starts.push(0);
      ends.push(0);
    }
    let pos = 0;
    for (const part of splitSpecial(text, opts.parseSpecial ?? true, this.specialIds)) {
      if (part.special !== undefined) {
        ids.push(part.special);
        starts.push(pos);
        ends.push(pos + part.text.length);
        pos += part.text.length;
        continue;
      }
      for (const piece of preTokenize(part.text)) {
        // The UTF-16 span of the character each byte of the piece belongs to.
        const charStart: number[] = [];
        const charEnd: number[] = [];
        let c = 0;
        for (const ch of piece) {
          for (let k = utf8.encode(ch).length; k > 0; k--) {
            charStart.push(c);
            charEnd.push(c + ch.length);
          }
          c += ch.length;
        }
        let byte = 0;
        for (const id of this.encodePiece(piece)) {
          const len = [...this.tokens[id]!].length;
          ids.push(id);
          starts.push(pos + charStart[byte]!);
          ends.push(pos + charEnd[byte + len - 1]!);
          byte += len;
        }
        pos += piece.length;
      }
    }
    return { ids, starts, ends };
  }

  private encodePiece(piece: string): number[] {
    const hit = this.cache.get(piece);
    if (hit) return hit;
    let symbols = [...toByteLevel(piece)];
    // Repeatedly merge the lowest-ranked adjacent pair, leftmost first (llama.cpp and Hugging Face agree on this).
    for (;;) {
      let bestRank = Infinity;
      let bestAt = -1;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const r = this.ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          bestAt = i;
        }
      }
      if (bestAt < 0) break;
      const [a, b] = this.merges[bestRank]!;
      const next: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i + 1 < symbols.length && symbols[i] === a && symbols[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(symbols[i]!);
      }
      symbols = next;
    }
    const ids = symbols.map((s) => {
      const id = this.ids.get(s);
      if (id === undefined) throw new Error(`internal: symbol ${JSON.stringify(s)} has no token`);
      return id;
    });
    if (this.cache.size < 100_000) this.cache.set(piece, ids);
    return ids;
  }

  /** Raw bytes of a token (special tokens: their text). */
  tokenBytes(id: number): Uint8Array {
    const t = this.tokens[id];
    if (t === undefined) throw new InvalidInputError(`token id ${id} is outside the vocabulary (0..${this.tokens.length - 1})`);
    return this.isSpecial(id) ? utf8.encode(t) : fromByteLevel(t);
  }

  /** Token ids back to text; special tokens are written out unless `skipSpecial`. */
  decode(ids: readonly number[], opts: { skipSpecial?: boolean } = {}): string {
    const chunks: Uint8Array[] = [];
    for (const id of ids) {
      if (opts.skipSpecial && this.isSpecial(id)) continue;
      chunks.push(this.tokenBytes(id));
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** The tokenizer's definition, for saving next to a model or rebuilding it exactly. */
  toSpec(): TokenizerSpec {
    return { merges: this.merges };
  }

  /** A Hugging Face `tokenizer.json` (object) equivalent to this tokenizer. */
  toHfTokenizerJson(): Record<string, unknown> {
    const vocab: Record<string, number> = {};
    this.tokens.forEach((t, i) => {
      if (!this.isSpecial(i)) vocab[t] = i;
    });
    const addedTokens = SPECIAL_ORDER.map((s) => ({
      id: this.specialIds.get(SPECIAL[s.key])!.id,
      content: SPECIAL[s.key],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: s.type === TOKEN_TYPE.control,
    }));
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Split', pattern: { Regex: QWEN2_SPLIT_REGEX }, behavior: 'Isolated', invert: false },
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
        ],
      },
      post_processor: {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: SPECIAL.bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [
          { SpecialToken: { id: SPECIAL.bos, type_id: 0 } },
          { Sequence: { id: 'A', type_id: 0 } },
          { SpecialToken: { id: SPECIAL.bos, type_id: 1 } },
          { Sequence: { id: 'B', type_id: 1 } },
        ],
        special_tokens: { [SPECIAL.bos]: { id: SPECIAL.bos, ids: [this.bos], tokens: [SPECIAL.bos] } },
      },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: '',
        end_of_word_suffix: '',
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: this.merges.map(([a, b]) => `${a} ${b}`),
      },
    };
  }

  /** The matching Hugging Face `tokenizer_config.json` (object). */
  toHfTokenizerConfig(modelMaxLength: number): Record<string, unknown> {
    return {
      add_bos_token: true,
      add_eos_token: false,
      bos_token: SPECIAL.bos,
      eos_token: SPECIAL.eos,
      pad_token: SPECIAL.pad,
      unk_token: null,
      clean_up_tokenization_spaces: false,
      legacy: true,
      model_max_length: modelMaxLength,
      tokenizer_class: 'LlamaTokenizerFast',
      chat_template: CHAT_TEMPLATE,
    };
  }

  static fromHfTokenizerJson(json: unknown): DemoTokenizer {
    const model = (json as { model?: { type?: string; merges?: unknown } }).model;
    if (!model || model.type !== 'BPE' || !Array.isArray(model.merges)) {
      throw new InvalidInputError('not a BPE tokenizer.json: expected model.type "BPE" with a merges list');
    }
    const merges = (model.merges as unknown[]).map((m) => {
      const pair = typeof m === 'string' ? m.split(' ') : (m as string[]);
      if (pair.length !== 2) throw new InvalidInputError(`bad merge in tokenizer.json: ${JSON.stringify(m)}`);
      return [pair[0]!, pair[1]!] as const;
    });
    return new DemoTokenizer({ merges });
  }
}

/** Set every `tokenizer.*` key llama.cpp needs for this tokenizer (and the chat template) on a GGUF writer. */
export function writeTokenizerToGguf(writer: GgufWriter, tok: DemoTokenizer): void {
  writer.set('tokenizer.ggml.model', 'gpt2');
  writer.set('tokenizer.ggml.pre', PRE_TOKENIZER);
  writer.set('tokenizer.ggml.tokens', [...tok.tokens], 'string[]');
  writer.set('tokenizer.ggml.token_type', [...tok.types], 'i32[]');
  writer.set('tokenizer.ggml.merges', tok.merges.map(([a, b]) => `${a} ${b}`), 'string[]');
  writer.set('tokenizer.ggml.bos_token_id', tok.bos, 'u32');
  writer.set('tokenizer.ggml.eos_token_id', tok.eos, 'u32');
  writer.set('tokenizer.ggml.padding_token_id', tok.pad, 'u32');
  writer.set('tokenizer.ggml.add_bos_token', true, 'bool');
  writer.set('tokenizer.ggml.add_eos_token', false, 'bool');
  writer.set('tokenizer.chat_template', CHAT_TEMPLATE);
}

/** Write `tokenizer.json` and `tokenizer_config.json` into a folder (Hugging Face layout), atomically. */
export function writeHfTokenizerFiles(dir: string, tok: DemoTokenizer, modelMaxLength = 512): { tokenizer: string; config: string } {
  const tokenizer = join(dir, 'tokenizer.json');
  const config = join(dir, 'tokenizer_config.json');
  writeJsonAtomic(tokenizer, tok.toHfTokenizerJson());
  writeJsonAtomic(config, tok.toHfTokenizerConfig(modelMaxLength));
  return { tokenizer, config };
}
