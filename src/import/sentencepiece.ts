/**
 * SentencePiece `tokenizer.model` files (a protobuf `ModelProto`), read without a protobuf library: we need only the
 * pieces (text, score, type) and two normalizer flags. Field numbers from sentencepiece_model.proto:
 * ModelProto { repeated SentencePiece pieces = 1; TrainerSpec trainer_spec = 2; NormalizerSpec normalizer_spec = 3 }
 * SentencePiece { string piece = 1; float score = 2; Type type = 3 (NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4,
 * UNUSED 5, BYTE 6) }; NormalizerSpec { add_dummy_prefix = 3; remove_extra_whitespaces = 4 }.
 */
import { existsSync, readFileSync } from 'node:fs';
import { InvalidInputError } from '../util/errors.js';

export const SP_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface SentencePiece {
  piece: string;
  score: number;
  type: number;
}

export interface SentencePieceModel {
  pieces: SentencePiece[];
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
}

export function readSentencePieceModel(path: string): SentencePieceModel {
  if (!existsSync(path)) throw new InvalidInputError(`SentencePiece model not found: ${path}`);
  try {
    return parseSentencePieceModel(readFileSync(path));
  } catch (e) {
    if (e instanceof InvalidInputError) throw e;
    throw new InvalidInputError(`${path} is not a SentencePiece model: ${(e as Error).message}`);
  }
}

export function parseSentencePieceModel(buf: Uint8Array): SentencePieceModel {
  const model: SentencePieceModel = { pieces: [], addDummyPrefix: true, removeExtraWhitespaces: true };
  for (const f of fields(buf)) {
    if (f.no === 1 && f.bytes) {
      const p: SentencePiece = { piece: '', score: 0, type: SP_TYPE.NORMAL };
      for (const g of fields(f.bytes)) {
        if (g.no === 1 && g.bytes) p.piece = Buffer.from(g.bytes).toString('utf8');
        else if (g.no === 2 && g.fixed32 !== undefined) p.score = g.fixed32;
        else if (g.no === 3 && g.varint !== undefined) p.type = g.varint;
      }
      model.pieces.push(p);
    } else if (f.no === 3 && f.bytes) {
      for (const g of fields(f.bytes)) {
        if (g.no === 3 && g.varint !== undefined) model.addDummyPrefix = g.varint !== 0;
        if (g.no === 4 && g.varint !== undefined) model.removeExtraWhitespaces = g.varint !== 0;
      }
    }
  }
  if (model.pieces.length === 0) throw new InvalidInputError('no pieces in the SentencePiece model');
  return model;
}

interface Field {
  no: number;
  varint?: number;
  fixed32?: number;
  bytes?: Uint8Array;
}

/** The fields of one protobuf message (wire types 0, 1, 2, 5). */
function* fields(buf: Uint8Array): Generator<Field> {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let mul = 1;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const b = buf[pos++]!;
      result += (b & 0x7f) * mul;
      if (!(b & 0x80)) return result;
      mul *= 128;
    }
  };
  while (pos < buf.length) {
    const key = varint();
    const no = Math.floor(key / 8);
    switch (key & 7) {
      case 0:
        yield { no, varint: varint() };
        break;
      case 1:
        pos += 8;
        yield { no };
        break;
      case 2: {
        const len = varint();
        if (pos + len > buf.length) throw new Error('truncated field');
        yield { no, bytes: buf.subarray(pos, pos + len) };
        pos += len;
        break;
      }
      case 5:
        if (pos + 4 > buf.length) throw new Error('truncated field');
        yield { no, fixed32: view.getFloat32(pos, true) };
        pos += 4;
        break;
      default:
        throw new Error(`unsupported protobuf wire type ${key & 7}`);
    }
  }
}

/** Encode pieces as a minimal `tokenizer.model` (tests build SentencePiece models with it). */
export function encodeSentencePieceModel(pieces: readonly SentencePiece[], opts: { addDummyPrefix?: boolean } = {}): Uint8Array {
  const out: number[] = [];
  const varint = (v: number, to: number[]) => {
    while (v >= 0x80) {
      to.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    to.push(v);
  };
  const bytesField = (no: number, bytes: ArrayLike<number>, to: number[]) => {
    varint(no * 8 + 2, to);
    varint(bytes.length, to);
    for (let i = 0; i < bytes.length; i++) to.push(bytes[i]!);
  };
  for (const p of pieces) {
    const msg: number[] = [];
    bytesField(1, Buffer.from(p.piece, 'utf8'), msg);
    varint(2 * 8 + 5, msg);
    const f = Buffer.alloc(4);
    f.writeFloatLE(p.score);
    msg.push(...f);
    varint(3 * 8 + 0, msg);
    varint(p.type, msg);
    bytesField(1, msg, out);
  }
  const norm: number[] = [];
  bytesField(1, Buffer.from('identity'), norm);
  varint(3 * 8 + 0, norm);
  varint(opts.addDummyPrefix === false ? 0 : 1, norm);
  varint(4 * 8 + 0, norm);
  varint(0, norm);
  bytesField(3, norm, out);
  return Uint8Array.from(out);
}
