/**
 * A freshly initialised demo model as GGUF: qwen2 architecture, the demo tokenizer inside, seeded random weights.
 * Training starts from this file (llama.cpp loads it, trains it and saves the result).
 *
 * Shape rules that follow from this llama.cpp build's training path (issue 7): as many KV heads as heads (the K and V
 * projections receive no gradient there, so they stay at their random initialisation and should at least be square),
 * and an output matrix of its own (the token embedding is not trained unless marked by hand).
 */
import { GgufWriter } from '../gguf/writer.js';
import { InvalidInputError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { writeTokenizerToGguf, type DemoTokenizer } from './tokenizer.js';

export interface DemoModelShape {
  nEmbd: number;
  nLayer: number;
  nHead: number;
  /** Feed-forward width. */
  nFf: number;
  /** Training context (GGUF `context_length`). */
  nCtx: number;
  ropeFreqBase?: number;
  rmsEps?: number;
}

export const DEFAULT_SHAPE: DemoModelShape = { nEmbd: 128, nLayer: 4, nHead: 4, nFf: 384, nCtx: 512 };

export function validateShape(s: DemoModelShape): void {
  for (const k of ['nEmbd', 'nLayer', 'nHead', 'nFf', 'nCtx'] as const) {
    if (!Number.isInteger(s[k]) || s[k] < 1) throw new InvalidInputError(`model ${k} must be a positive integer, got ${s[k]}`);
  }
  if (s.nEmbd % s.nHead !== 0) throw new InvalidInputError(`embedding width ${s.nEmbd} is not a multiple of the head count ${s.nHead}`);
  if ((s.nEmbd / s.nHead) % 2 !== 0) throw new InvalidInputError(`head size ${s.nEmbd / s.nHead} must be even for rotary embeddings`);
}

/** Number of parameters of a shape with a vocabulary of `nVocab` tokens. */
export function parameterCount(s: DemoModelShape, nVocab: number): number {
  const perLayer = 4 * s.nEmbd * s.nEmbd + 3 * s.nEmbd + 3 * s.nEmbd * s.nFf + 2 * s.nEmbd;
  return 2 * nVocab * s.nEmbd + s.nEmbd + s.nLayer * perLayer;
}

/**
 * Write an initialised model. Weights ~ N(0, 0.02), residual output projections scaled by 1/sqrt(2 nLayer) (GPT-2's
 * initialisation), norms 1, biases 0. Reproducible from `seed`.
 */
export function writeInitialDemoModel(path: string, tok: DemoTokenizer, shape: DemoModelShape = DEFAULT_SHAPE, opts: { seed?: number; name?: string } = {}): void {
  validateShape(shape);
  const rng = new Rng(opts.seed ?? 1);
  const { nEmbd, nLayer, nHead, nFf, nCtx } = shape;
  const nVocab = tok.vocabSize;
  const w = new GgufWriter();
  const a = 'qwen2';
  w.set('general.architecture', a);
  w.set('general.name', opts.name ?? 'lynx-demo');
  w.set('general.file_type', 0, 'u32');
  w.set(`${a}.block_count`, nLayer, 'u32');
  w.set(`${a}.context_length`, nCtx, 'u32');
  w.set(`${a}.embedding_length`, nEmbd, 'u32');
  w.set(`${a}.feed_forward_length`, nFf, 'u32');
  w.set(`${a}.attention.head_count`, nHead, 'u32');
  w.set(`${a}.attention.head_count_kv`, nHead, 'u32');
  w.set(`${a}.attention.layer_norm_rms_epsilon`, shape.rmsEps ?? 1e-6, 'f32');
  w.set(`${a}.rope.freq_base`, shape.ropeFreqBase ?? 10000, 'f32');
  writeTokenizerToGguf(w, tok);

  const normal = (n: number, std: number) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = rng.normal() * std;
    return out;
  };
  const std = 0.02;
  const residualStd = std / Math.sqrt(2 * nLayer);
  w.addTensor('token_embd.weight', [nEmbd, nVocab], normal(nEmbd * nVocab, std));
  w.addTensor('output_norm.weight', [nEmbd], new Float32Array(nEmbd).fill(1));
  w.addTensor('output.weight', [nEmbd, nVocab], normal(nEmbd * nVocab, std));
  for (let l = 0; l < nLayer; l++) {
    const p = `blk.${l}.`;
    w.addTensor(p + 'attn_norm.weight', [nEmbd], new Float32Array(nEmbd).fill(1));
    for (const m of ['q', 'k', 'v']) {
      w.addTensor(`${p}attn_${m}.weight`, [nEmbd, nEmbd], normal(nEmbd * nEmbd, std));
      w.addTensor(`${p}attn_${m}.bias`, [nEmbd], new Float32Array(nEmbd));
    }
    w.addTensor(p + 'attn_output.weight', [nEmbd, nEmbd], normal(nEmbd * nEmbd, residualStd));
    w.addTensor(p + 'ffn_norm.weight', [nEmbd], new Float32Array(nEmbd).fill(1));
    w.addTensor(p + 'ffn_gate.weight', [nEmbd, nFf], normal(nEmbd * nFf, std));
    w.addTensor(p + 'ffn_up.weight', [nEmbd, nFf], normal(nEmbd * nFf, std));
    w.addTensor(p + 'ffn_down.weight', [nFf, nEmbd], normal(nFf * nEmbd, residualStd));
  }
  w.write(path);
}
