/**
 * A plain TypeScript forward pass of Llama and Qwen2/Qwen3 decoder-only transformers, written to be read, not to
 * be fast (in the spirit of llama2.c's run.c). It is the oracle the tests hold llama.cpp to: it loads a Hugging Face
 * folder (safetensors) or a llama2.c checkpoint directly, runs one token at a time with a KV cache, and returns the
 * logits and every layer's hidden state.
 *
 * Conventions follow transformers: hidden[0] is the token embedding, hidden[l + 1] the output of block l (the
 * residual stream), `final` the last hidden state after the final RMSNorm (what the LM head reads).
 */
import { UnsupportedError } from '../util/errors.js';
import { readHfConfig, type HfConfig, type RopeScaling } from '../import/hf-config.js';
import { Llama2cCheckpoint } from '../import/llama2c.js';
import { SafetensorsModel } from '../formats/safetensors.js';

export interface ReferenceConfig {
  nLayer: number;
  nEmbd: number;
  nFf: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  nVocab: number;
  rmsEps: number;
  ropeTheta: number;
  /**
   * Which dimensions RoPE rotates together: 'halves' pairs (i, i + d/2) as transformers' rotate_half does;
   * 'interleaved' pairs (2i, 2i + 1) as llama2.c (and Meta's original Llama code) do.
   */
  ropeStyle: 'halves' | 'interleaved';
  ropeScaling: RopeScaling;
  /** Positions below this need no dynamic-NTK rescaling. */
  nCtxTrain: number;
}

/** Matrices are [out][in], row-major (as Hugging Face Linear weights and llama2.c store them). */
export interface ReferenceLayer {
  attnNorm: Float32Array;
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  bo?: Float32Array;
  /** Qwen3: RMSNorm weights over each query / key head, applied before RoPE. */
  qNorm?: Float32Array;
  kNorm?: Float32Array;
  ffnNorm: Float32Array;
  wGate: Float32Array;
  wUp: Float32Array;
  wDown: Float32Array;
  bGate?: Float32Array;
  bUp?: Float32Array;
  bDown?: Float32Array;
}

export interface ReferenceWeights {
  /** [nVocab][nEmbd] */
  embed: Float32Array;
  layers: ReferenceLayer[];
  norm: Float32Array;
  /** [nVocab][nEmbd]; the embedding itself when tied. */
  lmHead: Float32Array;
}

export interface StepResult {
  logits: Float32Array;
  /** nLayer + 1 vectors: the embedding, then each block's output. */
  hidden: Float32Array[];
  /** The last block's output after the final RMSNorm. */
  final: Float32Array;
}

// ------------------------------------------------------------------------------------------ building blocks

/** y = W x (+ b), W is [out][in]. Accumulates in double precision. */
export function matvec(w: Float32Array, x: Float32Array, out: number, b?: Float32Array): Float32Array {
  const n = x.length;
  const y = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    const row = o * n;
    for (let i = 0; i < n; i++) s += w[row + i]! * x[i]!;
    y[o] = b ? s + b[o]! : s;
  }
  return y;
}

/** x / sqrt(mean(x²) + eps) * weight. */
export function rmsNorm(x: Float32Array, weight: Float32Array, eps: number): Float32Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! * scale * weight[i]!;
  return out;
}

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** The rotation frequency of each pair, with rope scaling applied as transformers computes `inv_freq`. */
export function ropeFrequencies(c: ReferenceConfig): Float64Array {
  const d = c.headDim;
  const inv = new Float64Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = 1 / c.ropeTheta ** ((2 * i) / d);
  const s = c.ropeScaling;
  switch (s.type) {
    case 'none':
    case 'dynamic': // identical to none inside the training context (checked per position)
      return inv;
    case 'linear':
      return inv.map((f) => f / s.factor);
    case 'llama3': {
      const lowWavelen = s.originalContext / s.lowFreqFactor;
      const highWavelen = s.originalContext / s.highFreqFactor;
      return inv.map((f) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen < highWavelen) return f;
        if (wavelen > lowWavelen) return f / s.factor;
        const smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        return (1 - smooth) * (f / s.factor) + smooth * f;
      });
    }
    case 'yarn':
      throw new UnsupportedError('the reference forward pass does not implement YaRN rope scaling');
  }
}

/** Rotate one head vector (in place) by position `pos`. */
function rope(v: Float32Array, offset: number, pos: number, freqs: Float64Array, style: ReferenceConfig['ropeStyle']): void {
  const half = freqs.length;
  for (let i = 0; i < half; i++) {
    const angle = pos * freqs[i]!;
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    const a = style === 'halves' ? offset + i : offset + 2 * i;
    const b = style === 'halves' ? offset + i + half : offset + 2 * i + 1;
    const x = v[a]!;
    const y = v[b]!;
    v[a] = x * cos - y * sin;
    v[b] = x * sin + y * cos;
  }
}

// ------------------------------------------------------------------------------------------ the model

export class ReferenceModel {
  private readonly freqs: Float64Array;

  constructor(
    readonly config: ReferenceConfig,
    readonly weights: ReferenceWeights,
  ) {
    this.freqs = ropeFrequencies(config);
  }

  /** A Hugging Face folder (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM; safetensors). */
  static fromHf(folder: string): ReferenceModel {
    const hf = readHfConfig(folder);
    const st = SafetensorsModel.open(folder);
    try {
      return new ReferenceModel(hfReferenceConfig(hf), loadHfWeights(st, hf));
    } finally {
      st.close();
    }
  }

  /** A llama2.c checkpoint (legacy .bin). */
  static fromLlama2c(path: string): ReferenceModel {
    const ck = Llama2cCheckpoint.open(path);
    try {
      const c = ck.config;
      const config: ReferenceConfig = {
        nLayer: c.nLayers,
        nEmbd: c.dim,
        nFf: c.hiddenDim,
        nHead: c.nHeads,
        nHeadKv: c.nKvHeads,
        headDim: c.headSize,
        nVocab: c.vocabSize,
        rmsEps: 1e-5,
        ropeTheta: 10000,
        ropeStyle: 'interleaved',
        ropeScaling: { type: 'none' },
        nCtxTrain: c.seqLen,
      };
      const layers: ReferenceLayer[] = [];
      for (let l = 0; l < c.nLayers; l++) {
        layers.push({
          attnNorm: ck.layer('rms_att', l),
          wq: ck.layer('wq', l),
          wk: ck.layer('wk', l),
          wv: ck.layer('wv', l),
          wo: ck.layer('wo', l),
          ffnNorm: ck.layer('rms_ffn', l),
          wGate: ck.layer('w1', l),
          wDown: ck.layer('w2', l),
          wUp: ck.layer('w3', l),
        });
      }
      const embed = ck.tensor('token_embedding');
      return new ReferenceModel(config, { embed, layers, norm: ck.tensor('rms_final'), lmHead: c.sharedClassifier ? embed : ck.tensor('wcls') });
    } finally {
      ck.close();
    }
  }

  /** A fresh sequence (its own KV cache). */
  session(): ReferenceSession {
    return new ReferenceSession(this);
  }

  /** Run a whole sequence; one StepResult per position. */
  forward(tokens: readonly number[]): StepResult[] {
    const s = this.session();
    return tokens.map((t) => s.step(t));
  }

  /** Greedy decoding: feed `prompt`, then append the argmax token `n` times. Returns the generated tokens. */
  greedy(prompt: readonly number[], n: number, stopAt?: readonly number[]): number[] {
    const s = this.session();
    let last: StepResult | undefined;
    for (const t of prompt) last = s.step(t);
    const out: number[] = [];
    for (let i = 0; i < n && last; i++) {
      const next = argmax(last.logits);
      out.push(next);
      if (stopAt?.includes(next)) break;
      last = s.step(next);
    }
    return out;
  }

  /** @internal rotate a head by position */
  applyRope(v: Float32Array, offset: number, pos: number): void {
    if (this.config.ropeScaling.type === 'dynamic' && pos >= this.config.nCtxTrain) {
      throw new UnsupportedError('the reference forward pass does not implement dynamic NTK rope scaling beyond the training context');
    }
    rope(v, offset, pos, this.freqs, this.config.ropeStyle);
  }
}

export class ReferenceSession {
  private readonly keys: Float32Array[][] = [];
  private readonly values: Float32Array[][] = [];
  private pos = 0;

  constructor(private readonly model: ReferenceModel) {
    for (let l = 0; l < model.config.nLayer; l++) {
      this.keys.push([]);
      this.values.push([]);
    }
  }

  get length(): number {
    return this.pos;
  }

  /** Process one token at the next position. */
  step(token: number): StepResult {
    const { config: c, weights: w } = this.model;
    if (token < 0 || token >= c.nVocab) throw new RangeError(`token ${token} outside the vocabulary of ${c.nVocab}`);
    const pos = this.pos++;
    const d = c.headDim;
    const kvDim = c.nHeadKv * d;
    const group = c.nHead / c.nHeadKv;

    const x = w.embed.slice(token * c.nEmbd, (token + 1) * c.nEmbd);
    const hidden: Float32Array[] = [x.slice()];

    for (let l = 0; l < c.nLayer; l++) {
      const L = w.layers[l]!;

      // Attention: x + Wo · softmax(q·kᵀ / √d) v, with RoPE on q and k.
      const h = rmsNorm(x, L.attnNorm, c.rmsEps);
      const q = matvec(L.wq, h, c.nHead * d, L.bq);
      const k = matvec(L.wk, h, kvDim, L.bk);
      const v = matvec(L.wv, h, kvDim, L.bv);
      if (L.qNorm && L.kNorm) {
        for (let hd = 0; hd < c.nHead; hd++) q.set(rmsNorm(q.subarray(hd * d, (hd + 1) * d), L.qNorm, c.rmsEps), hd * d);
        for (let hd = 0; hd < c.nHeadKv; hd++) k.set(rmsNorm(k.subarray(hd * d, (hd + 1) * d), L.kNorm, c.rmsEps), hd * d);
      }
      for (let hd = 0; hd < c.nHead; hd++) this.model.applyRope(q, hd * d, pos);
      for (let hd = 0; hd < c.nHeadKv; hd++) this.model.applyRope(k, hd * d, pos);
      this.keys[l]!.push(k);
      this.values[l]!.push(v);

      const att = new Float32Array(c.nHead * d);
      const scale = 1 / Math.sqrt(d);
      for (let hd = 0; hd < c.nHead; hd++) {
        const kvh = Math.floor(hd / group); // grouped-query attention: `group` query heads share a key/value head
        const scores = new Float64Array(pos + 1);
        let max = -Infinity;
        for (let t = 0; t <= pos; t++) {
          const kt = this.keys[l]![t]!;
          let s = 0;
          for (let i = 0; i < d; i++) s += q[hd * d + i]! * kt[kvh * d + i]!;
          scores[t] = s * scale;
          max = Math.max(max, scores[t]!);
        }
        let sum = 0;
        for (let t = 0; t <= pos; t++) sum += scores[t] = Math.exp(scores[t]! - max);
        for (let t = 0; t <= pos; t++) {
          const p = scores[t]! / sum;
          const vt = this.values[l]![t]!;
          for (let i = 0; i < d; i++) att[hd * d + i]! += p * vt[kvh * d + i]!;
        }
      }
      const o = matvec(L.wo, att, c.nEmbd, L.bo);
      for (let i = 0; i < c.nEmbd; i++) x[i]! += o[i]!;

      // SwiGLU MLP: x + Wdown · (silu(Wgate h) ⊙ Wup h).
      const h2 = rmsNorm(x, L.ffnNorm, c.rmsEps);
      const gate = matvec(L.wGate, h2, c.nFf, L.bGate);
      const up = matvec(L.wUp, h2, c.nFf, L.bUp);
      for (let i = 0; i < c.nFf; i++) gate[i] = silu(gate[i]!) * up[i]!;
      const down = matvec(L.wDown, gate, c.nEmbd, L.bDown);
      for (let i = 0; i < c.nEmbd; i++) x[i]! += down[i]!;

      hidden.push(x.slice());
    }

    const final = rmsNorm(x, w.norm, c.rmsEps);
    const logits = matvec(w.lmHead, final, c.nVocab);
    return { logits, hidden, final };
  }
}

export function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

// ------------------------------------------------------------------------------------------ Hugging Face loading

function hfReferenceConfig(hf: HfConfig): ReferenceConfig {
  return {
    nLayer: hf.nLayer,
    nEmbd: hf.nEmbd,
    nFf: hf.nFf,
    nHead: hf.nHead,
    nHeadKv: hf.nHeadKv,
    headDim: hf.headDim,
    nVocab: hf.nVocab,
    rmsEps: hf.rmsEps,
    ropeTheta: hf.ropeTheta,
    ropeStyle: 'halves', // transformers' Llama, Mistral and Qwen all use rotate_half
    ropeScaling: hf.ropeScaling,
    nCtxTrain: hf.nCtxTrain,
  };
}

function loadHfWeights(st: SafetensorsModel, hf: HfConfig): ReferenceWeights {
  const get = (name: string) => st.tensor(name);
  const opt = (name: string) => (st.has(name) ? st.tensor(name) : undefined);
  const layers: ReferenceLayer[] = [];
  for (let l = 0; l < hf.nLayer; l++) {
    const p = `model.layers.${l}.`;
    layers.push({
      attnNorm: get(p + 'input_layernorm.weight'),
      wq: get(p + 'self_attn.q_proj.weight'),
      wk: get(p + 'self_attn.k_proj.weight'),
      wv: get(p + 'self_attn.v_proj.weight'),
      wo: get(p + 'self_attn.o_proj.weight'),
      bq: opt(p + 'self_attn.q_proj.bias'),
      bk: opt(p + 'self_attn.k_proj.bias'),
      bv: opt(p + 'self_attn.v_proj.bias'),
      bo: opt(p + 'self_attn.o_proj.bias'),
      qNorm: hf.qkNorm ? get(p + 'self_attn.q_norm.weight') : undefined,
      kNorm: hf.qkNorm ? get(p + 'self_attn.k_norm.weight') : undefined,
      ffnNorm: get(p + 'post_attention_layernorm.weight'),
      wGate: get(p + 'mlp.gate_proj.weight'),
      wUp: get(p + 'mlp.up_proj.weight'),
      wDown: get(p + 'mlp.down_proj.weight'),
      bGate: opt(p + 'mlp.gate_proj.bias'),
      bUp: opt(p + 'mlp.up_proj.bias'),
      bDown: opt(p + 'mlp.down_proj.bias'),
    });
  }
  const embed = get('model.embed_tokens.weight');
  const lmHead = hf.tiedEmbeddings ? embed : get('lm_head.weight');
  return { embed, layers, norm: get('model.norm.weight'), lmHead };
}
