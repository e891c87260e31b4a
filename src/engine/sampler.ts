/**
 * Sampling, in one place: a seeded llama.cpp sampler chain per sequence, plus log-probabilities computed in
 * TypeScript from the raw logits.
 *
 * The chain is temperature → top-k → top-p → min-p → draw: truncation sees the temperature-scaled distribution, as in
 * Hugging Face `generate` and vLLM, where the settings reasoning models are evaluated with ("temperature 0.6, top-p
 * 0.95") come from. llama.cpp's own tools put temperature last, which keeps a wider nucleus at T < 1.
 *
 * From the decoding literature: Mirostat v1/v2 (temperature → mirostat, llama.cpp's own samplers; its surprise state
 * lives with the sequence, see Sequence.generate), Top-H (entropy-bounded truncation, in TypeScript: top-h.ts) and
 * exploratory annealed decoding (a temperature per generated position: annealing.ts). Top-H and annealing sample on
 * the host from the logits the engine copies anyway; the rest runs natively.
 */
import './disposable.js';
import koffi from 'koffi';
import type { LlamaApi } from '../native/llama.js';
import type { Pointer } from '../native/pointer.js';
import { llama_token_data, llama_token_data_array } from '../native/llama.js';
import { DisposedError, LynxEngineUsageError } from './errors.js';
import { checkInteger, checkNumber } from './validate.js';
import { Rng } from '../util/rng.js';
import { annealedTemperature, type AnnealingSchedule } from './annealing.js';
import { topHFromLogits } from './top-h.js';

export interface SamplerOptions {
  /** 0 (default) = greedy; a finite number >= 0. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = all), an integer >= 0. */
  topK?: number;
  /** Nucleus: keep the most likely tokens up to this total probability, 0 to 1 (1 = all). */
  topP?: number;
  /** Drop tokens below this fraction of the most likely token's probability, 0 to 1. */
  minP?: number;
  /** Seed of the draw (an integer, used modulo 2^32); the same seed and logits give the same tokens. Default 0. */
  seed?: number;
  /**
   * Mirostat (Basu et al., 2021): adapt the truncation so that the observed surprise −log₂ p of the sampled tokens
   * tracks `tau` (bits), updating μ with learning rate `eta`; v1 estimates the Zipf exponent from the top `m` tokens
   * (default 100). Applied after temperature; not combinable with topK, topP, minP, topH or annealing.
   */
  mirostat?: { version: 1 | 2; tau: number; eta: number; m?: number };
  /** Top-H's entropy coefficient α in (0, 1): keep the likeliest tokens while H(q) ≤ α·H(p) (top-h.ts). */
  topH?: number;
  /** Exploratory annealed decoding: the temperature of each generated position (replaces `temperature`). */
  annealing?: AnnealingSchedule;
}

/** Every option in its range (LynxEngineUsageError names the option and the range). */
export function checkSamplerOptions(options: SamplerOptions): void {
  if (typeof options !== 'object' || options === null) throw new LynxEngineUsageError('sampler options must be an object');
  if (options.temperature !== undefined) checkNumber('temperature', options.temperature, 0, Infinity);
  if (options.topK !== undefined) checkInteger('topK', options.topK, 0, Number.MAX_SAFE_INTEGER);
  if (options.topP !== undefined) checkNumber('topP', options.topP, 0, 1);
  if (options.minP !== undefined) checkNumber('minP', options.minP, 0, 1);
  if (options.seed !== undefined) checkInteger('seed', options.seed, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const truncation = (['topK', 'topP', 'minP'] as const).filter((k) => options[k] !== undefined && !(k === 'topP' ? options[k] === 1 : options[k] === 0));
  if (options.mirostat !== undefined) {
    const m = options.mirostat;
    if (typeof m !== 'object' || m === null || (m.version !== 1 && m.version !== 2)) throw new LynxEngineUsageError('mirostat.version must be 1 or 2');
    checkNumber('mirostat.tau', m.tau, 0, 64);
    checkNumber('mirostat.eta', m.eta, 0, 1);
    if (m.m !== undefined) checkInteger('mirostat.m', m.m, 1, 1 << 20);
    const others = [...truncation, ...(options.topH !== undefined ? ['topH'] : []), ...(options.annealing !== undefined ? ['annealing'] : [])];
    if (others.length > 0) throw new LynxEngineUsageError(`mirostat does its own truncation: drop ${others.join(', ')}`);
  }
  if (options.topH !== undefined) {
    checkNumber('topH', options.topH, 0, 1);
    if (!(options.topH > 0 && options.topH < 1)) throw new LynxEngineUsageError(`topH must be in (0, 1) (got ${options.topH})`);
    if (truncation.length > 0) throw new LynxEngineUsageError(`topH is a truncation of its own: drop ${truncation.join(', ')}`);
  }
  if (options.annealing !== undefined) {
    const a = options.annealing;
    if (typeof a !== 'object' || a === null) throw new LynxEngineUsageError('annealing must be { tauMax, tauMin, decay, warmup? }');
    checkNumber('annealing.tauMax', a.tauMax, 1e-3, 100);
    checkNumber('annealing.tauMin', a.tauMin, 1e-3, a.tauMax);
    checkNumber('annealing.decay', a.decay, 1e-6, 1e9);
    if (a.warmup !== undefined) checkInteger('annealing.warmup', a.warmup, 0, 1 << 30);
  }
}

export function isGreedy(opts: SamplerOptions): boolean {
  return (!opts.temperature || opts.temperature <= 0) && !opts.mirostat && !opts.annealing && opts.topH === undefined;
}

/** Samplers that keep state from one token to the next (Mirostat's μ): the sequence keeps theirs across calls. */
export function isStateful(opts: SamplerOptions): boolean {
  return opts.mirostat !== undefined;
}

/** A native sampler chain. Each sequence owns one, so sequences sampled in one batch stay independent. */
export class Sampler {
  readonly options: Readonly<SamplerOptions>;
  /** Greedy: the token is the argmax, read in TypeScript from the logits (no candidate array to build). */
  readonly greedy: boolean;
  /** The token is drawn in TypeScript from the logits (Top-H, annealing): not on a worker thread, not from the context. */
  readonly host: boolean;
  #chain: Pointer | null;
  /** Host draws: their RNG, and the generated position (annealing). */
  #rng: Rng | undefined;
  #position = 0;
  readonly #api: LlamaApi;
  /** Candidate array for sampleFromLogits, kept between calls (a vocabulary's worth of llama_token_data). */
  #candidates: { mem: Pointer; n: number } | undefined;

  constructor(api: LlamaApi, options: SamplerOptions = {}, nVocab = 0, clone?: Pointer) {
    checkSamplerOptions(options);
    this.#api = api;
    this.options = { ...options };
    this.greedy = isGreedy(options);
    this.host = options.topH !== undefined || options.annealing !== undefined;
    if (clone) {
      this.#chain = clone;
      return;
    }
    const chain = api.llama_sampler_chain_init(api.llama_sampler_chain_default_params());
    const seed = (options.seed ?? 0) >>> 0;
    if (this.greedy) {
      api.llama_sampler_chain_add(chain, api.llama_sampler_init_greedy());
    } else if (options.mirostat) {
      const m = options.mirostat;
      if (options.temperature !== undefined && options.temperature > 0) api.llama_sampler_chain_add(chain, api.llama_sampler_init_temp(options.temperature));
      api.llama_sampler_chain_add(
        chain,
        m.version === 1 ? api.llama_sampler_init_mirostat(nVocab, seed, m.tau, m.eta, m.m ?? 100) : api.llama_sampler_init_mirostat_v2(seed, m.tau, m.eta),
      );
    } else if (this.host) {
      // The host scales (and, for Top-H, truncates and draws); the native part truncates and draws for annealing.
      this.#rng = new Rng(seed);
      if (options.topK && options.topK > 0) api.llama_sampler_chain_add(chain, api.llama_sampler_init_top_k(options.topK));
      if (options.topP !== undefined && options.topP < 1) api.llama_sampler_chain_add(chain, api.llama_sampler_init_top_p(options.topP, 1));
      if (options.minP !== undefined && options.minP > 0) api.llama_sampler_chain_add(chain, api.llama_sampler_init_min_p(options.minP, 1));
      api.llama_sampler_chain_add(chain, api.llama_sampler_init_dist(seed));
    } else {
      api.llama_sampler_chain_add(chain, api.llama_sampler_init_temp(options.temperature!));
      if (options.topK && options.topK > 0) api.llama_sampler_chain_add(chain, api.llama_sampler_init_top_k(options.topK));
      if (options.topP !== undefined && options.topP < 1) api.llama_sampler_chain_add(chain, api.llama_sampler_init_top_p(options.topP, 1));
      if (options.minP !== undefined && options.minP > 0) api.llama_sampler_chain_add(chain, api.llama_sampler_init_min_p(options.minP, 1));
      api.llama_sampler_chain_add(chain, api.llama_sampler_init_dist(seed));
    }
    this.#chain = chain;
  }

  /** The temperature of the next host draw. */
  #temperature(): number {
    const a = this.options.annealing;
    return a ? annealedTemperature(a, this.#position) : (this.options.temperature ?? 1);
  }

  /** A host draw: Top-H on the temperature-scaled distribution, or the annealed temperature before the native chain. */
  #drawOnHost(logits: Float32Array): number {
    const t = this.#temperature();
    this.#position++;
    if (this.options.topH === undefined) return this.#applyChain(logits, 1 / t);
    const { ids, q } = topHFromLogits(logits, t, this.options.topH);
    let u = this.#rng!.next();
    for (let i = 0; i < ids.length; i++) {
      u -= q[i]!;
      if (u < 0) return ids[i]!;
    }
    return ids[ids.length - 1]!;
  }

  /**
   * Sample from output row `index` of the context's last decode, whose logits `logits` views. Greedy reads the argmax
   * from them; other chains run natively on the context's own buffer.
   */
  sampleFromContext(ctx: Pointer, index: number, logits: Float32Array): number {
    const chain = this.#ptr;
    if (this.host) return this.#drawOnHost(logits);
    return this.greedy ? argmax(logits) : this.#api.llama_sampler_sample(chain, ctx, index);
  }

  /**
   * The same draw on a libuv worker thread. The caller must not start another llama_decode on this context, nor free
   * it, until the callback has run (the worker reads the context's logits).
   */
  sampleFromContextAsync(ctx: Pointer, index: number): Promise<number> {
    const chain = this.#ptr;
    return new Promise((resolve, reject) =>
      this.#api.llama_sampler_sample_async(chain, ctx, index, (err, token) => (err ? reject(err as Error) : resolve(token))),
    );
  }

  /** Sample from a copy of logits (used when the context's buffer has moved on since they were computed). */
  sampleFromLogits(logits: Float32Array): number {
    this.#ptr;
    if (this.host) return this.#drawOnHost(logits);
    if (this.greedy) return argmax(logits);
    return this.#applyChain(logits, 1);
  }

  /** Run the native chain on a copy of `logits` scaled by `scale`; returns the chosen id. */
  #applyChain(logits: Float32Array, scale: number): number {
    const chain = this.#ptr;
    const n = logits.length;
    const size = koffi.sizeof(llama_token_data);
    if (!this.#candidates || this.#candidates.n !== n) {
      if (this.#candidates) koffi.free(this.#candidates.mem);
      this.#candidates = { mem: koffi.alloc(llama_token_data, n), n };
    }
    const mem = this.#candidates.mem;
    // llama_token_data is { int32 id; float logit; float p }: fill it through two typed views of the same memory.
    const buf = koffi.view(mem, n * size);
    const ids = new Int32Array(buf);
    const floats = new Float32Array(buf);
    const stride = size / 4;
    for (let i = 0, o = 0; i < n; i++, o += stride) {
      ids[o] = i;
      floats[o + 1] = logits[i]! * scale;
      floats[o + 2] = 0;
    }
    const arrMem = koffi.alloc(llama_token_data_array, 1);
    try {
      koffi.encode(arrMem, llama_token_data_array, { data: mem, size: n, selected: -1, sorted: false });
      this.#api.llama_sampler_apply(chain, arrMem);
      const out = koffi.decode(arrMem, llama_token_data_array) as { data: Pointer; selected: number | bigint };
      const selected = Number(out.selected);
      // Samplers may replace `data`; read the chosen id from wherever it points now.
      const id = koffi.decode(out.data, selected * size, 'int32_t') as number;
      this.#api.llama_sampler_accept(chain, id);
      return id;
    } finally {
      koffi.free(arrMem);
    }
  }

  /** A copy of this sampler with its state (Mirostat's μ, the RNG): what a forked sequence continues with. */
  clone(): Sampler {
    const copy = new Sampler(this.#api, this.options, 0, this.#api.llama_sampler_clone(this.#ptr));
    if (this.#rng) copy.#rng = this.#rng.clone();
    copy.#position = this.#position;
    return copy;
  }

  /** A new chain with the same settings and a different seed (for forks). */
  withSeed(seed: number): Sampler {
    this.#ptr;
    return new Sampler(this.#api, { ...this.options, seed });
  }

  get disposed(): boolean {
    return this.#chain === null;
  }

  /** Free the native chain; later calls throw DisposedError. Calling it again does nothing. */
  dispose(): void {
    if (this.#chain) {
      this.#api.llama_sampler_free(this.#chain);
      this.#chain = null;
    }
    if (this.#candidates) {
      koffi.free(this.#candidates.mem);
      this.#candidates = undefined;
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  get #ptr(): Pointer {
    if (!this.#chain) throw new DisposedError('the sampler was disposed: create a new Sampler');
    return this.#chain;
  }
}

/**
 * The first index of the largest logit: llama.cpp's greedy sampler's choice, without building its 152k-entry
 * candidate array (0.5 ms a token on one core, against 0.1 ms for this pass).
 */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let max = logits[0]!;
  for (let i = 1; i < logits.length; i++) {
    if (logits[i]! > max) {
      max = logits[i]!;
      best = i;
    }
  }
  return best;
}

export interface TokenLogprob {
  token: number;
  logprob: number;
}

/**
 * log p(token) under softmax(logits) — the model's own distribution, before temperature and truncation (what vLLM
 * and DeepConf report) — and the k most likely tokens with their log-probabilities.
 */
export function logprobs(logits: Float32Array, token: number, k = 0): { logprob: number; top: TokenLogprob[] } {
  const { logZ, top } = logSoftmaxSummary(logits, k);
  return { logprob: logits[token]! - logZ, top };
}

/**
 * The log-normaliser of softmax(logits) and its k most likely tokens: everything `logprobs` needs except the
 * sampled token, so it can be computed while the token is still being drawn.
 * One pass for the max, one for the normaliser, one partial selection for the top k.
 */
export function logSoftmaxSummary(logits: Float32Array, k = 0): { logZ: number; top: TokenLogprob[] } {
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
  return { logZ, top };
}
