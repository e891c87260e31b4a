/**
 * Sampling, in one place: a seeded llama.cpp sampler chain per sequence (top-k → top-p → min-p → temperature → draw,
 * the order llama.cpp's own tools use), plus log-probabilities computed in TypeScript from the raw logits.
 */
import koffi from 'koffi';
import type { LlamaApi, Pointer } from './native.js';
import { llama_token_data, llama_token_data_array } from './native.js';

export interface SamplerOptions {
  /** 0 (default) = greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  /** Seed of the draw; the same seed and logits give the same tokens. Default 0. */
  seed?: number;
}

export function isGreedy(opts: SamplerOptions): boolean {
  return !opts.temperature || opts.temperature <= 0;
}

/** A native sampler chain. Each sequence owns one, so sequences sampled in one batch stay independent. */
export class Sampler {
  readonly options: Readonly<SamplerOptions>;
  private chain: Pointer | null;
  private readonly api: LlamaApi;

  constructor(api: LlamaApi, options: SamplerOptions = {}) {
    this.api = api;
    this.options = { ...options };
    const chain = api.llama_sampler_chain_init(api.llama_sampler_chain_default_params());
    if (isGreedy(options)) {
      api.llama_sampler_chain_add(chain, api.llama_sampler_init_greedy());
    } else {
      if (options.topK && options.topK > 0) api.llama_sampler_chain_add(chain, api.llama_sampler_init_top_k(options.topK));
      if (options.topP !== undefined && options.topP < 1) api.llama_sampler_chain_add(chain, api.llama_sampler_init_top_p(options.topP, 1));
      if (options.minP !== undefined && options.minP > 0) api.llama_sampler_chain_add(chain, api.llama_sampler_init_min_p(options.minP, 1));
      api.llama_sampler_chain_add(chain, api.llama_sampler_init_temp(options.temperature!));
      api.llama_sampler_chain_add(chain, api.llama_sampler_init_dist((options.seed ?? 0) >>> 0));
    }
    this.chain = chain;
  }

  /** Sample from output row `index` of the context's last decode (fast path: llama.cpp reads its own logits). */
  sampleFromContext(ctx: Pointer, index: number): number {
    return this.api.llama_sampler_sample(this.ptr, ctx, index);
  }

  /** Sample from a copy of logits (used when the context's buffer has moved on since they were computed). */
  sampleFromLogits(logits: Float32Array): number {
    const n = logits.length;
    const size = koffi.sizeof(llama_token_data);
    const mem = koffi.alloc(llama_token_data, n);
    try {
      const view = new DataView(koffi.view(mem, n * size));
      for (let i = 0; i < n; i++) {
        view.setInt32(i * size, i, true);
        view.setFloat32(i * size + 4, logits[i]!, true);
        view.setFloat32(i * size + 8, 0, true);
      }
      const arr = { data: mem, size: n, selected: -1, sorted: false };
      const arrMem = koffi.alloc(llama_token_data_array, 1);
      try {
        koffi.encode(arrMem, llama_token_data_array, arr);
        this.applyNative(arrMem);
        const out = koffi.decode(arrMem, llama_token_data_array) as { data: Pointer; selected: number | bigint };
        const selected = Number(out.selected);
        // Samplers may replace `data`; read the chosen id from wherever it points now.
        const id = koffi.decode(out.data, selected * size, 'int32_t') as number;
        this.api.llama_sampler_accept(this.ptr, id);
        return id;
      } finally {
        koffi.free(arrMem);
      }
    } finally {
      koffi.free(mem);
    }
  }

  /** A new chain with the same settings and a different seed (for forks). */
  withSeed(seed: number): Sampler {
    return new Sampler(this.api, { ...this.options, seed });
  }

  dispose(): void {
    if (this.chain) {
      this.api.llama_sampler_free(this.chain);
      this.chain = null;
    }
  }

  private get ptr(): Pointer {
    if (!this.chain) throw new Error('sampler disposed');
    return this.chain;
  }

  private applyNative(arrMem: Pointer): void {
    applyFn ??= this.api.lib.func('llama_sampler_apply', 'void', ['void *', 'void *']) as (s: Pointer, a: Pointer) => void;
    applyFn(this.ptr, arrMem);
  }
}

let applyFn: ((s: Pointer, a: Pointer) => void) | undefined;

export interface TokenLogprob {
  token: number;
  logprob: number;
}

/**
 * log p(token) under softmax(logits), and the k most likely tokens with their log-probabilities.
 * One pass for the max, one for the normaliser, one partial selection for the top k.
 */
export function logprobs(logits: Float32Array, token: number, k = 0): { logprob: number; top: TokenLogprob[] } {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[i]! - max);
  const logZ = max + Math.log(sum);
  const top: TokenLogprob[] = [];
  if (k > 0) {
    // Keep a small sorted list; vocabularies are large and k is small.
    let floor = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = logits[i]!;
      if (top.length === k && v <= floor) continue;
      let j = top.length;
      top.push({ token: i, logprob: v });
      while (j > 0 && top[j - 1]!.logprob < v) {
        top[j] = top[j - 1]!;
        j--;
      }
      top[j] = { token: i, logprob: v };
      if (top.length > k) top.pop();
      floor = top[top.length - 1]!.logprob;
    }
    for (const t of top) t.logprob -= logZ;
  }
  return { logprob: logits[token]! - logZ, top };
}
