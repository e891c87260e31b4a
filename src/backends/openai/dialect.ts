/**
 * The OpenAI-compatible servers this client knows, and what each needs to continue a token-id prompt and say which
 * token ids it sampled. All take token-id prompts; they differ in how they return ids and log-probabilities:
 *
 * - vLLM: `/v1/completions` with `return_token_ids` (`choices[].token_ids`, per chunk when streaming) and
 *   `return_tokens_as_token_ids` (`logprobs.tokens` and the `top_logprobs` keys as `token_id:N`, for versions without
 *   `return_token_ids`).
 * - SGLang: `/v1/completions` with `return_token_ids`; `top_logprobs` keys are token texts.
 * - lynx serve: as vLLM, plus `sampler_seed` (the sampler's own seed, so that it samples exactly as the local engine).
 * - llama.cpp's llama-server: its own `/completion` (`return_tokens`, `n_probs`, `samplers`), because its OpenAI route
 *   returns ids only through log-probabilities and drops tokens that end inside a UTF-8 character; `/completion`
 *   still withholds those while streaming but counts them (`tokens_predicted`) and lists every id at the end.
 * - anything else ("openai"): vLLM's fields, best effort.
 *
 * Sampling is sent in full (temperature, top-p, top-k, min-p, penalties off): servers otherwise fill gaps from the
 * model's generation_config (vLLM) or their own defaults (llama.cpp's top-k 40, min-p 0.05).
 */
import type { SamplerOptions, TokenLogprob } from '../../engine/index.js';
import { RemoteServerError } from './errors.js';
import { TransientFailure } from './retry.js';

export type ServerKind = 'vllm' | 'sglang' | 'lynx' | 'llamacpp' | 'openai';

/** The server kind from `/v1/models`' `owned_by`. */
export function serverKindOf(ownedBy: unknown): ServerKind {
  switch (typeof ownedBy === 'string' ? ownedBy.toLowerCase() : '') {
    case 'vllm':
      return 'vllm';
    case 'sglang':
      return 'sglang';
    case 'lynx':
      return 'lynx';
    case 'llamacpp':
    case 'llama.cpp':
      return 'llamacpp';
    default:
      return 'openai';
  }
}

export interface CompletionParams {
  model: string;
  prompt: readonly number[];
  maxTokens: number;
  sampler: SamplerOptions;
  /** undefined: no log-probabilities wanted; 0: the sampled token's; k: also the k most likely. */
  logprobs?: number;
  /** Keep generating past end-of-generation tokens. */
  ignoreEos: boolean;
}

export interface ChunkToken {
  id: number;
  logprob?: number;
  top?: TokenLogprob[];
}

export interface CompletionChunk {
  tokens: ChunkToken[];
  /** Set on the chunk that ends the completion: `stop` (end of generation) or `length` (max_tokens). */
  finish?: string;
  /** Tokens the server says it generated so far (llama.cpp): more than it sent means it withheld some. */
  generated?: number;
  /** Every generated token id, on the last chunk (llama.cpp). */
  allTokens?: number[];
}

/** Token-text keys of `top_logprobs` to ids (servers that do not name tokens by id). */
export type PieceIds = () => ReadonlyMap<string, number>;

export interface Dialect {
  readonly path: string;
  body(p: CompletionParams): Record<string, unknown>;
  parse(json: unknown, pieces: PieceIds): CompletionChunk;
}

export function dialectOf(kind: ServerKind): Dialect {
  return kind === 'llamacpp' ? LLAMACPP : openAIDialect(kind);
}

function openAIDialect(kind: Exclude<ServerKind, 'llamacpp'>): Dialect {
  // Where ids may come only through logprobs (`token_id:N`), ask for them always.
  const alwaysLogprobs = kind === 'vllm' || kind === 'openai';
  return {
    path: '/v1/completions',
    body: (p) => {
      const s = p.sampler;
      const body: Record<string, unknown> = {
        model: p.model,
        prompt: p.prompt,
        max_tokens: p.maxTokens,
        temperature: s.temperature ?? 0,
        top_p: s.topP ?? 1,
        top_k: s.topK && s.topK > 0 ? s.topK : -1,
        min_p: s.minP ?? 0,
        seed: (s.seed ?? 0) >>> 0,
        n: 1,
        stream: true,
        return_token_ids: true,
      };
      if (p.logprobs !== undefined || alwaysLogprobs) body.logprobs = p.logprobs ?? 0;
      if (kind !== 'sglang') body.return_tokens_as_token_ids = true;
      if (kind === 'lynx') body.sampler_seed = body.seed;
      if (kind !== 'lynx') {
        Object.assign(body, { repetition_penalty: 1, presence_penalty: 0, frequency_penalty: 0, skip_special_tokens: false });
        if (p.ignoreEos) body.ignore_eos = true;
      }
      return body;
    },
    parse: (json, pieces) => parseOpenAIChunk(json, pieces),
  };
}

const LLAMACPP: Dialect = {
  path: '/completion',
  body: (p) => {
    const s = p.sampler;
    return {
      prompt: p.prompt,
      n_predict: p.maxTokens,
      temperature: s.temperature ?? 0,
      top_p: s.topP ?? 1,
      top_k: s.topK && s.topK > 0 ? s.topK : 0,
      min_p: s.minP ?? 0,
      seed: (s.seed ?? 0) >>> 0,
      // The local engine's chain (temperature first, then truncation, then the seeded draw); nothing else.
      samplers: ['temperature', 'top_k', 'top_p', 'min_p'],
      repeat_penalty: 1,
      stream: true,
      return_tokens: true,
      cache_prompt: true,
      n_probs: p.logprobs === undefined ? 0 : Math.max(1, p.logprobs),
      post_sampling_probs: false,
      ignore_eos: p.ignoreEos,
    };
  },
  parse: (json) => {
    const j = object(json);
    throwIfError(j);
    const ids = Array.isArray(j.tokens) ? (j.tokens as unknown[]).map(tokenId) : [];
    if (j.stop === true) {
      const finish = j.stop_type === 'limit' ? 'length' : 'stop';
      return { tokens: [], finish, generated: num(j.tokens_predicted), allTokens: ids };
    }
    const probs = Array.isArray(j.completion_probabilities) ? (j.completion_probabilities as Record<string, unknown>[]) : [];
    const tokens = ids.map((id, i): ChunkToken => {
      const p = probs[i];
      if (!p || num(p.id) !== id) return { id };
      const top = Array.isArray(p.top_logprobs) ? (p.top_logprobs as Record<string, unknown>[]).map((t) => ({ token: tokenId(t.id), logprob: Number(t.logprob) })) : undefined;
      return { id, logprob: num(p.logprob), top };
    });
    return { tokens, generated: num(j.tokens_predicted) };
  },
};

/** A `/v1/completions` chunk (streamed or whole): ids from `token_ids` or from `token_id:N` names, log-probabilities aligned. */
export function parseOpenAIChunk(json: unknown, pieces: PieceIds): CompletionChunk {
  const j = object(json);
  throwIfError(j);
  const choices = Array.isArray(j.choices) ? (j.choices as Record<string, unknown>[]) : [];
  const choice = choices[0];
  if (!choice) return { tokens: [] }; // a usage-only chunk
  const lp = choice.logprobs && typeof choice.logprobs === 'object' ? (choice.logprobs as Record<string, unknown>) : undefined;
  let ids: number[] | undefined = Array.isArray(choice.token_ids) ? (choice.token_ids as unknown[]).map(tokenId) : undefined;
  let logprobs: (number | undefined)[] = [];
  let tops: (TokenLogprob[] | undefined)[] = [];
  if (lp && Array.isArray(lp.content)) {
    // llama.cpp's (and the chat API's) shape: one object per token.
    const content = lp.content as Record<string, unknown>[];
    ids ??= content.every((c) => typeof c.id === 'number') ? content.map((c) => c.id as number) : undefined;
    logprobs = content.map((c) => num(c.logprob));
    tops = content.map((c) => (Array.isArray(c.top_logprobs) ? topEntries((c.top_logprobs as Record<string, unknown>[]).map((t) => [t.id ?? t.token, t.logprob]), pieces) : undefined));
  } else if (lp && Array.isArray(lp.tokens)) {
    const named = (lp.tokens as unknown[]).map(idFromName);
    ids ??= named.every((x) => x !== undefined) ? (named as number[]) : undefined;
    logprobs = Array.isArray(lp.token_logprobs) ? (lp.token_logprobs as unknown[]).map(num) : [];
    tops = Array.isArray(lp.top_logprobs)
      ? (lp.top_logprobs as unknown[]).map((d) => (d && typeof d === 'object' ? topEntries(Object.entries(d as Record<string, unknown>), pieces) : undefined))
      : [];
  }
  const finish = typeof choice.finish_reason === 'string' ? choice.finish_reason : undefined;
  if (ids === undefined) {
    if (typeof choice.text === 'string' && choice.text !== '') {
      throw new RemoteServerError(
        'the server returned text without its token ids: lynx needs token ids (vLLM >= 0.10.2 return_token_ids or return_tokens_as_token_ids, SGLang return_token_ids, llama.cpp /completion)',
      );
    }
    ids = [];
  }
  // Log-probabilities belong to tokens only when they line up one to one.
  const aligned = logprobs.length === ids.length;
  const tokens = ids.map((id, i): ChunkToken => (aligned ? { id, logprob: logprobs[i], top: tops[i] } : { id }));
  return { tokens, finish };
}

/** Top log-probabilities sorted, most likely first; names resolved to ids (unknown names dropped). */
function topEntries(entries: [unknown, unknown][], pieces: PieceIds): TokenLogprob[] {
  const out: TokenLogprob[] = [];
  for (const [key, value] of entries) {
    const logprob = num(value);
    if (logprob === undefined) continue;
    const id = typeof key === 'number' ? key : idFromName(key) ?? (typeof key === 'string' ? pieces().get(key) : undefined);
    if (id !== undefined) out.push({ token: id, logprob });
  }
  return out.sort((a, b) => b.logprob - a.logprob);
}

/** `token_id:123` (vLLM's return_tokens_as_token_ids) to 123. */
function idFromName(name: unknown): number | undefined {
  if (typeof name !== 'string' || !name.startsWith('token_id:')) return undefined;
  const n = Number(name.slice(9));
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

function tokenId(x: unknown): number {
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) throw new RemoteServerError(`the server returned ${JSON.stringify(x)} as a token id`);
  return x;
}

function num(x: unknown): number | undefined {
  return typeof x === 'number' && Number.isFinite(x) ? x : undefined;
}

function object(json: unknown): Record<string, unknown> {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new TransientFailure(`the server sent ${JSON.stringify(json)?.slice(0, 80)} where a completion chunk belongs`);
  return json as Record<string, unknown>;
}

/** An error sent inside a stream: a server fault is worth retrying, a refused request is not. */
function throwIfError(j: Record<string, unknown>): void {
  if (j.error === undefined || j.error === null) return;
  const e = typeof j.error === 'object' ? (j.error as Record<string, unknown>) : { message: String(j.error) };
  const code = Number(e.code ?? e.status ?? NaN);
  const message = `the server reported an error mid-stream: ${String(e.message ?? JSON.stringify(e))}`;
  if (Number.isInteger(code) && code >= 400 && code < 500 && code !== 408 && code !== 429) throw new RemoteServerError(message, code);
  throw new TransientFailure(message);
}
