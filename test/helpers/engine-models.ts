/**
 * Tiny random llama / qwen2 models written as GGUF for the engine tests, with a byte-level BPE vocabulary
 * (256 byte tokens, a few merges, R1-style special tokens) and a chat template.
 */
import { GgufWriter } from '../../src/formats/gguf/writer.js';
import { Rng } from '../../src/util/rng.js';

export interface TinyOptions {
  arch: 'llama' | 'qwen2';
  type: 'f32' | 'f16' | 'q8_0';
  nEmbd?: number;
  nLayer?: number;
  nHead?: number;
  nHeadKv?: number;
  nFf?: number;
  seed?: number;
  /** Keep the generated weights in TINY.lastWeights (for tests that recompute parts of the forward pass). */
  returnWeights?: boolean;
}

export const TINY = {
  rmsEps: 1e-6,
  specials: ['<｜end▁of▁sentence｜>', '<｜begin▁of▁sentence｜>', '<｜User｜>', '<｜Assistant｜>', '<think>', '</think>'],
  merges: ['Ġ t', 'Ġ a', 'h e', 'i n', 'r e', 'o n', 'Ġt he', 'e r'],
  chatTemplate:
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}<｜User｜>{{ m['content'] }}{% else %}<｜Assistant｜>{{ m['content'] }}<｜end▁of▁sentence｜>{% endif %}{% endfor %}{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}",
  lastWeights: undefined as Map<string, Float32Array> | undefined,
};

/** GPT-2's byte-to-unicode table: printable stand-ins for every byte, as byte-level BPE vocabularies store them. */
export function byteToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const table: string[] = new Array(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i]!)));
  return table;
}

export function tinyVocab(): { tokens: string[]; types: number[] } {
  const bytes = byteToUnicode();
  const merged = TINY.merges.map((m) => m.replace(' ', ''));
  const tokens = [...bytes, ...merged, ...TINY.specials];
  const types = [...bytes.map(() => 1), ...merged.map(() => 1), ...TINY.specials.map((s, i) => (i < 4 ? 3 : 4))];
  return { tokens, types };
}

/** Write a tiny random model and return its path. */
export function buildTinyGguf(path: string, opts: TinyOptions): string {
  const nEmbd = opts.nEmbd ?? 64;
  const nLayer = opts.nLayer ?? 4;
  const nHead = opts.nHead ?? 4;
  const nHeadKv = opts.nHeadKv ?? 2;
  const nFf = opts.nFf ?? 128;
  const headDim = nEmbd / nHead;
  const rng = new Rng(opts.seed ?? 1234);
  const { tokens, types } = tinyVocab();
  const nVocab = tokens.length;
  const a = opts.arch;

  const w = new GgufWriter();
  w.set('general.architecture', a);
  w.set('general.name', `tiny-${a}`);
  w.set(`${a}.block_count`, nLayer, 'u32');
  w.set(`${a}.context_length`, 2048, 'u32');
  w.set(`${a}.embedding_length`, nEmbd, 'u32');
  w.set(`${a}.feed_forward_length`, nFf, 'u32');
  w.set(`${a}.attention.head_count`, nHead, 'u32');
  w.set(`${a}.attention.head_count_kv`, nHeadKv, 'u32');
  w.set(`${a}.attention.layer_norm_rms_epsilon`, TINY.rmsEps, 'f32');
  w.set(`${a}.rope.freq_base`, 10000, 'f32');
  w.set('tokenizer.ggml.model', 'gpt2');
  w.set('tokenizer.ggml.pre', 'qwen2');
  w.set('tokenizer.ggml.tokens', tokens, 'string[]');
  w.set('tokenizer.ggml.token_type', types, 'i32[]');
  w.set('tokenizer.ggml.merges', TINY.merges, 'string[]');
  w.set('tokenizer.ggml.bos_token_id', tokens.indexOf('<｜begin▁of▁sentence｜>'), 'u32');
  w.set('tokenizer.ggml.eos_token_id', tokens.indexOf('<｜end▁of▁sentence｜>'), 'u32');
  w.set('tokenizer.ggml.add_bos_token', false, 'bool');
  w.set('tokenizer.chat_template', TINY.chatTemplate);

  const weights = new Map<string, Float32Array>();
  const tensor = (name: string, dims: number[], scale: number, fill?: number | ((i: number) => number)) => {
    const n = dims.reduce((x, y) => x * y, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = typeof fill === 'function' ? fill(i) : fill ?? rng.normal() * scale;
    if (opts.returnWeights) weights.set(name, data);
    // Norms and biases stay F32 (as llama.cpp's converter keeps 1-D tensors); matrices take the requested type.
    const type = dims.length === 1 ? 'f32' : opts.type;
    w.addTensor(name, dims, data, type);
  };
  tensor('token_embd.weight', [nEmbd, nVocab], 1.0);
  // A non-trivial output norm, so the 'final' tap test can tell it apart from the block output.
  tensor('output_norm.weight', [nEmbd], 0, () => 0.5 + rng.next());
  tensor('output.weight', [nEmbd, nVocab], 0.1);
  for (let l = 0; l < nLayer; l++) {
    const p = `blk.${l}.`;
    tensor(p + 'attn_norm.weight', [nEmbd], 0, 1);
    tensor(p + 'attn_q.weight', [nEmbd, nEmbd], 0.15);
    tensor(p + 'attn_k.weight', [nEmbd, nHeadKv * headDim], 0.15);
    tensor(p + 'attn_v.weight', [nEmbd, nHeadKv * headDim], 0.15);
    if (a === 'qwen2') {
      tensor(p + 'attn_q.bias', [nEmbd], 0.1);
      tensor(p + 'attn_k.bias', [nHeadKv * headDim], 0.1);
      tensor(p + 'attn_v.bias', [nHeadKv * headDim], 0.1);
    }
    tensor(p + 'attn_output.weight', [nEmbd, nEmbd], 0.15);
    tensor(p + 'ffn_norm.weight', [nEmbd], 0, 1);
    tensor(p + 'ffn_gate.weight', [nEmbd, nFf], 0.15);
    tensor(p + 'ffn_up.weight', [nEmbd, nFf], 0.15);
    tensor(p + 'ffn_down.weight', [nFf, nEmbd], 0.15);
  }
  w.write(path);
  TINY.lastWeights = opts.returnWeights ? weights : undefined;
  return path;
}
