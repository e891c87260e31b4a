/**
 * llama2.c checkpoints (Karpathy's legacy `.bin`: a header of 7 little-endian int32 — dim, hidden_dim, n_layers,
 * n_heads, n_kv_heads, vocab_size (negative: separate classifier), seq_len — then fp32 weights in run.c's order)
 * and its `tokenizer.bin` (int32 max_token_length, then per token: f32 score, int32 length, bytes).
 *
 * Matrices are stored [out][in] row-major, as run.c's matmul reads them (and as Hugging Face stores Linear weights).
 * Queries and keys rotate interleaved pairs (2i, 2i+1), which is what llama.cpp's `llama` architecture does, so no
 * permutation is needed on the way to GGUF.
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, readFileSync } from 'node:fs';
import { InvalidInputError } from '../util/errors.js';
import { TOKEN_TYPE } from './hf-vocab.js';

export interface Llama2cConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
  headSize: number;
}

/** Layer-stacked weights: each entry holds all layers, [layer][out][in]. */
export type Llama2cTensor =
  | 'token_embedding'
  | 'rms_att'
  | 'wq'
  | 'wk'
  | 'wv'
  | 'wo'
  | 'rms_ffn'
  | 'w1'
  | 'w2'
  | 'w3'
  | 'rms_final'
  | 'wcls';

const HEADER_BYTES = 28;

export class Llama2cCheckpoint {
  private fd: number | undefined;
  /** Float offset and length of each tensor. */
  private readonly layout = new Map<Llama2cTensor, { offset: number; count: number }>();

  private constructor(readonly path: string, readonly config: Llama2cConfig, fd: number) {
    this.fd = fd;
    const c = config;
    const kvDim = c.nKvHeads * c.headSize;
    const sizes: [Llama2cTensor | 'freq_cis', number][] = [
      ['token_embedding', c.vocabSize * c.dim],
      ['rms_att', c.nLayers * c.dim],
      ['wq', c.nLayers * c.dim * c.nHeads * c.headSize],
      ['wk', c.nLayers * c.dim * kvDim],
      ['wv', c.nLayers * c.dim * kvDim],
      ['wo', c.nLayers * c.nHeads * c.headSize * c.dim],
      ['rms_ffn', c.nLayers * c.dim],
      ['w1', c.nLayers * c.dim * c.hiddenDim],
      ['w2', c.nLayers * c.hiddenDim * c.dim],
      ['w3', c.nLayers * c.dim * c.hiddenDim],
      ['rms_final', c.dim],
      // The legacy format stores RoPE tables (freq_cis_real, freq_cis_imag) that nothing reads any more.
      ['freq_cis', c.seqLen * c.headSize],
    ];
    let offset = HEADER_BYTES / 4;
    for (const [name, count] of sizes) {
      if (name !== 'freq_cis') this.layout.set(name, { offset, count });
      offset += count;
    }
    this.layout.set('wcls', c.sharedClassifier ? this.layout.get('token_embedding')! : { offset, count: c.vocabSize * c.dim });
    if (!c.sharedClassifier) offset += c.vocabSize * c.dim;
    const size = fstatSync(fd).size;
    if (size < offset * 4) {
      throw new InvalidInputError(`${path} is truncated: the header describes ${offset * 4} bytes of checkpoint but the file has ${size}`);
    }
    if (size > offset * 4) {
      throw new InvalidInputError(`${path}: ${size - offset * 4} bytes after the weights; it is not a llama2.c legacy (version 0) checkpoint`);
    }
  }

  static open(path: string): Llama2cCheckpoint {
    if (!existsSync(path)) throw new InvalidInputError(`llama2.c checkpoint not found: ${path}`);
    const fd = openSync(path, 'r');
    try {
      const head = Buffer.alloc(HEADER_BYTES);
      if (readSync(fd, head, 0, HEADER_BYTES, 0) < HEADER_BYTES) throw new InvalidInputError(`${path} is too short to be a llama2.c checkpoint`);
      const v = Array.from({ length: 7 }, (_, i) => head.readInt32LE(i * 4));
      const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = v as [number, number, number, number, number, number, number];
      if (head.subarray(0, 4).toString('latin1') === 'ak42') {
        throw new InvalidInputError(`${path} is a llama2.c version-1/2 export; only the legacy (version 0) format is supported`);
      }
      if ([dim, hiddenDim, nLayers, nHeads, nKvHeads, seqLen].some((x) => x <= 0 || x > 1 << 20) || vocab === 0 || dim % nHeads !== 0 || nHeads % nKvHeads !== 0) {
        throw new InvalidInputError(`${path} is not a llama2.c checkpoint (header ${v.join(', ')})`);
      }
      const config: Llama2cConfig = {
        dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(vocab), seqLen, sharedClassifier: vocab > 0, headSize: dim / nHeads,
      };
      return new Llama2cCheckpoint(path, config, fd);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** All layers of a weight. */
  tensor(name: Llama2cTensor): Float32Array {
    const { offset, count } = this.layout.get(name)!;
    return this.read(offset, count);
  }

  /** One layer of a layer-stacked weight. */
  layer(name: Exclude<Llama2cTensor, 'token_embedding' | 'rms_final' | 'wcls'>, l: number): Float32Array {
    const { offset, count } = this.layout.get(name)!;
    const per = count / this.config.nLayers;
    return this.read(offset + l * per, per);
  }

  private read(floatOffset: number, count: number): Float32Array {
    if (this.fd === undefined) throw new Error(`${this.path} is closed`);
    const out = new Float32Array(count);
    const bytes = new Uint8Array(out.buffer);
    let got = 0;
    while (got < bytes.length) {
      const n = readSync(this.fd, bytes, got, Math.min(bytes.length - got, 1 << 30), floatOffset * 4 + got);
      if (n === 0) throw new InvalidInputError(`${this.path} is truncated`);
      got += n;
    }
    return out;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

export interface Llama2cVocab {
  /** Raw token bytes as llama2.c stores them (e.g. " Once", "<0x0A>"). */
  pieces: Uint8Array[];
  scores: number[];
  maxTokenLength: number;
}

/** Read a llama2.c `tokenizer.bin` for a vocabulary of `vocabSize` tokens. */
export function readLlama2cTokenizer(path: string, vocabSize: number): Llama2cVocab {
  if (!existsSync(path)) throw new InvalidInputError(`llama2.c tokenizer not found: ${path}`);
  const buf = readFileSync(path);
  let pos = 0;
  const need = (n: number) => {
    if (pos + n > buf.length) {
      throw new InvalidInputError(`${path} holds fewer tokens than the checkpoint's vocabulary of ${vocabSize}: it is truncated or belongs to another model`);
    }
  };
  need(4);
  const maxTokenLength = buf.readInt32LE(0);
  pos = 4;
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  for (let i = 0; i < vocabSize; i++) {
    need(8);
    scores.push(buf.readFloatLE(pos));
    const len = buf.readInt32LE(pos + 4);
    pos += 8;
    if (len < 0 || len > 1 << 16) throw new InvalidInputError(`${path} is not a llama2.c tokenizer (token ${i} has length ${len})`);
    need(len);
    pieces.push(new Uint8Array(buf.subarray(pos, pos + len)));
    pos += len;
  }
  if (pos !== buf.length) {
    throw new InvalidInputError(`${path} has ${buf.length - pos} bytes after ${vocabSize} tokens: it belongs to a model with a larger vocabulary`);
  }
  return { pieces, scores, maxTokenLength };
}

/**
 * The SentencePiece-style ("llama") GGUF vocabulary of a llama2.c tokenizer, as llama.cpp's
 * convert-llama2c-to-ggml writes it: ids 0/1/2 are <unk>/<s>/</s>, `<0xXX>` pieces are BYTE tokens, spaces are
 * written as U+2581.
 */
export function llama2cVocabToGguf(v: Llama2cVocab): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens: string[] = [];
  const types: number[] = [];
  v.pieces.forEach((bytes, id) => {
    let text = Buffer.from(bytes).toString('utf8');
    let type: number = TOKEN_TYPE.NORMAL;
    if (id === 0) {
      text = '<unk>';
      type = TOKEN_TYPE.UNKNOWN;
    } else if (id === 1) {
      text = '<s>';
      type = TOKEN_TYPE.CONTROL;
    } else if (id === 2) {
      text = '</s>';
      type = TOKEN_TYPE.CONTROL;
    } else if (text === '') {
      type = TOKEN_TYPE.CONTROL;
    } else if (/^<0x[0-9A-Fa-f]{2}>$/.test(text)) {
      type = TOKEN_TYPE.BYTE;
    }
    tokens.push(text.replaceAll(' ', '\u2581'));
    types.push(type);
  });
  return { tokens, scores: v.scores.slice(), types };
}

/** Decode tokens to text as run.c does: `<0xXX>` pieces are raw bytes; the leading space after BOS is dropped. */
export function decodeLlama2c(v: Llama2cVocab, tokens: readonly number[], prev = 1): string {
  const bytes: number[] = [];
  for (const t of tokens) {
    const piece = v.pieces[t];
    if (!piece) throw new RangeError(`token ${t} outside the vocabulary of ${v.pieces.length}`);
    const text = Buffer.from(piece).toString('latin1');
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(text);
    if (byte) bytes.push(parseInt(byte[1]!, 16));
    else bytes.push(...(prev === 1 && piece[0] === 0x20 ? piece.subarray(1) : piece));
    prev = t;
  }
  return Buffer.from(bytes).toString('utf8');
}
