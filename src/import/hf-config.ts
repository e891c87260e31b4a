/**
 * A Hugging Face `config.json` read into the hyper-parameters both the converter and the reference forward pass
 * need, with the defaults transformers applies when a key is absent.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidInputError, UnsupportedError } from '../util/errors.js';
import { readJson } from '../util/fs.js';

/** Hugging Face architectures we convert, and the llama.cpp architecture each becomes. */
export const SUPPORTED_ARCHITECTURES = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
} as const;

export type HfArchitecture = keyof typeof SUPPORTED_ARCHITECTURES;
export type GgufArchitecture = (typeof SUPPORTED_ARCHITECTURES)[HfArchitecture];

/**
 * RoPE scaling as transformers names it. 'linear' divides positions by `factor`; 'llama3' rescales low frequencies
 * (Llama 3.1); 'yarn' is written to GGUF for llama.cpp but not computed by the reference forward pass.
 */
export type RopeScaling =
  | { type: 'none' }
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalContext: number }
  | { type: 'yarn'; factor: number; originalContext: number; attentionFactor?: number; betaFast?: number; betaSlow?: number }
  | { type: 'dynamic'; factor: number };

export interface HfConfig {
  hfArchitecture: HfArchitecture;
  arch: GgufArchitecture;
  nLayer: number;
  nEmbd: number;
  nFf: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  nVocab: number;
  nCtxTrain: number;
  rmsEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  tiedEmbeddings: boolean;
  /** q/k/v projections have biases (always for Qwen2; `attention_bias` for Llama/Qwen3). */
  qkvBias: boolean;
  /** o_proj has a bias (Llama `attention_bias`). */
  oBias: boolean;
  /** gate/up/down have biases (Llama `mlp_bias`). */
  mlpBias: boolean;
  /** RMSNorm over each head of q and k before RoPE (Qwen3). */
  qkNorm: boolean;
  bosTokenId?: number;
  eosTokenId?: number | number[];
  torchDtype?: string;
  raw: Record<string, unknown>;
}

/** Read `config.json` of a Hugging Face model folder. */
export function readHfConfig(folder: string): HfConfig {
  if (!existsSync(folder)) throw new InvalidInputError(`model folder not found: ${folder}`);
  if (!statSync(folder).isDirectory()) throw new InvalidInputError(`${folder} is not a folder (expected a Hugging Face model folder)`);
  const path = join(folder, 'config.json');
  if (!existsSync(path)) {
    throw new InvalidInputError(`${folder} has no config.json: it is not a Hugging Face model folder (download config.json with the weights)`);
  }
  return parseHfConfig(readJson<Record<string, unknown>>(path), path);
}

export function parseHfConfig(raw: Record<string, unknown>, where = 'config.json'): HfConfig {
  // Multimodal wrappers keep the language model's settings in text_config (as llama.cpp's converter merges them).
  const c: Record<string, unknown> = raw.text_config ? { ...raw, ...(raw.text_config as Record<string, unknown>) } : raw;
  const archs = (c.architectures as string[] | undefined) ?? [];
  const hfArchitecture = archs.find((a): a is HfArchitecture => a in SUPPORTED_ARCHITECTURES);
  if (!hfArchitecture) {
    const named = archs.length ? archs.join(', ') : `none (model_type ${JSON.stringify(c.model_type ?? null)})`;
    throw new UnsupportedError(
      `${where}: architecture ${named} is not supported; supported architectures: ${Object.keys(SUPPORTED_ARCHITECTURES).join(', ')}`,
    );
  }
  const arch = SUPPORTED_ARCHITECTURES[hfArchitecture];
  const num = (key: string, fallback?: number): number => {
    const v = c[key];
    if (typeof v === 'number') return v;
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new InvalidInputError(`${where}: missing "${key}"`);
    }
    throw new InvalidInputError(`${where}: "${key}" should be a number, got ${JSON.stringify(v)}`);
  };
  const nEmbd = num('hidden_size');
  const nHead = num('num_attention_heads');
  const nHeadKv = num('num_key_value_heads', nHead);
  const headDim = num('head_dim', nEmbd / nHead);
  if (!Number.isInteger(headDim)) throw new InvalidInputError(`${where}: hidden_size ${nEmbd} is not divisible by num_attention_heads ${nHead}`);
  if (nHead % nHeadKv !== 0) throw new InvalidInputError(`${where}: num_attention_heads ${nHead} is not a multiple of num_key_value_heads ${nHeadKv}`);
  if (arch === 'qwen2' && headDim * nHead !== nEmbd) {
    throw new UnsupportedError(`${where}: Qwen2 with head_dim ${headDim} × ${nHead} heads ≠ hidden_size ${nEmbd} is not supported by llama.cpp's qwen2`);
  }
  if ((arch === 'qwen2' || arch === 'qwen3') && c.use_sliding_window === true) {
    throw new UnsupportedError(`${where}: use_sliding_window is true; llama.cpp's ${arch} attends to the whole context, so the converted model would differ`);
  }
  // transformers: tie_word_embeddings defaults to true in PretrainedConfig, but Llama/Mistral/Qwen2/Qwen3 configs
  // set it explicitly to false by default.
  const tiedEmbeddings = c.tie_word_embeddings === true;
  const attentionBias = c.attention_bias === true;
  return {
    hfArchitecture,
    arch,
    nLayer: num('num_hidden_layers'),
    nEmbd,
    nFf: num('intermediate_size'),
    nHead,
    nHeadKv,
    headDim,
    nVocab: num('vocab_size'),
    nCtxTrain: num('max_position_embeddings', 2048),
    rmsEps: num('rms_norm_eps', 1e-6),
    ropeTheta: ropeTheta(c, num),
    ropeScaling: ropeScaling(c, where),
    tiedEmbeddings,
    qkvBias: arch === 'qwen2' ? true : attentionBias,
    oBias: arch === 'llama' ? attentionBias : false,
    mlpBias: arch === 'llama' ? c.mlp_bias === true : false,
    qkNorm: arch === 'qwen3',
    bosTokenId: typeof c.bos_token_id === 'number' ? c.bos_token_id : undefined,
    eosTokenId: typeof c.eos_token_id === 'number' || Array.isArray(c.eos_token_id) ? (c.eos_token_id as number | number[]) : undefined,
    torchDtype: typeof c.torch_dtype === 'string' ? c.torch_dtype : typeof c.dtype === 'string' ? c.dtype : undefined,
    raw,
  };
}

function ropeParams(c: Record<string, unknown>): Record<string, unknown> {
  // transformers ≥ 4.56 writes "rope_parameters"; older configs "rope_scaling" (null when unscaled).
  return ((c.rope_parameters ?? c.rope_scaling) as Record<string, unknown> | null) ?? {};
}

function ropeTheta(c: Record<string, unknown>, num: (k: string, f?: number) => number): number {
  const p = ropeParams(c);
  if (typeof p.rope_theta === 'number') return p.rope_theta;
  return num('rope_theta', 10000);
}

function ropeScaling(c: Record<string, unknown>, where: string): RopeScaling {
  const p = ropeParams(c);
  const type = (p.rope_type ?? p.type) as string | undefined;
  const factor = typeof p.factor === 'number' ? p.factor : undefined;
  if (type === undefined || type === 'default') return { type: 'none' };
  switch (type.toLowerCase()) {
    case 'linear':
      if (factor === undefined) throw new InvalidInputError(`${where}: linear rope scaling without "factor"`);
      return { type: 'linear', factor };
    case 'llama3':
      return {
        type: 'llama3',
        factor: factor ?? 8,
        lowFreqFactor: (p.low_freq_factor as number | undefined) ?? 1,
        highFreqFactor: (p.high_freq_factor as number | undefined) ?? 4,
        originalContext: (p.original_max_position_embeddings as number | undefined) ?? 8192,
      };
    case 'yarn': {
      if (factor === undefined) throw new InvalidInputError(`${where}: yarn rope scaling without "factor"`);
      const originalContext = (p.original_max_position_embeddings ?? c.max_position_embeddings) as number | undefined;
      if (originalContext === undefined) throw new InvalidInputError(`${where}: yarn rope scaling without "original_max_position_embeddings"`);
      return {
        type: 'yarn',
        factor,
        originalContext,
        attentionFactor: (p.attention_factor ?? p.attn_factor) as number | undefined,
        betaFast: p.beta_fast as number | undefined,
        betaSlow: p.beta_slow as number | undefined,
      };
    }
    case 'dynamic':
      return { type: 'dynamic', factor: factor ?? 1 };
    default:
      throw new UnsupportedError(`${where}: rope scaling type "${type}" is not supported (supported: linear, llama3, yarn, dynamic)`);
  }
}

/**
 * Per-frequency divisors of the llama3 rope scaling (Llama 3.1), one per rotated pair: as transformers'
 * `_compute_llama3_parameters` and llama.cpp's `rope_freqs` tensor (which divides each frequency by its entry).
 */
export function llama3RopeFactors(s: Extract<RopeScaling, { type: 'llama3' }>, theta: number, headDim: number): Float32Array {
  const out = new Float32Array(headDim / 2);
  const lowFreqWavelen = s.originalContext / s.lowFreqFactor;
  const highFreqWavelen = s.originalContext / s.highFreqFactor;
  for (let i = 0; i < headDim / 2; i++) {
    const freq = 1 / theta ** ((2 * i) / headDim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highFreqWavelen) out[i] = 1;
    else if (wavelen > lowFreqWavelen) out[i] = s.factor;
    else {
      const smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}
