/**
 * The pieces of the remote generator that need no server: reading SSE, what each server's completion chunks say
 * (token ids, log-probabilities, errors), the request each server gets, the in-flight limit that cannot deadlock on a
 * probe, backoff, base URLs.
 */
import { describe, expect, it } from 'vitest';
import { dialectOf, parseOpenAIChunk, serverKindOf } from '../src/backends/openai/dialect.js';
import { RemoteServerError } from '../src/backends/openai/errors.js';
import { InflightLimit, RequestFamily } from '../src/backends/openai/inflight.js';
import { rootOf } from '../src/backends/openai/remote.js';
import { backoffMs, DEFAULT_RETRY, isRetryableStatus, retryAfterMs, TransientFailure } from '../src/backends/openai/retry.js';
import { sseData } from '../src/backends/openai/sse.js';
import { Rng } from '../src/util/rng.js';

const noPieces = () => new Map<string, number>();

async function* bytes(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield new TextEncoder().encode(p);
}

async function all<T>(g: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of g) out.push(x);
  return out;
}

describe('server-sent events', () => {
  it('yields each event\'s data however the bytes are split, skipping comments', async () => {
    const events = await all(sseData(bytes('data: {"a":', '1}\n\n: keep-alive\n\ndata: x\r\n', 'data: y\r\n\r\n', 'data: [DONE]\n\n')));
    expect(events).toEqual(['{"a":1}', 'x\ny', '[DONE]']);
  });

  it('keeps a multi-byte character split between chunks', async () => {
    const utf8 = new TextEncoder().encode('data: ü\n\n');
    const g = sseData(
      (async function* () {
        yield utf8.subarray(0, 7);
        yield utf8.subarray(7);
      })(),
    );
    expect(await all(g)).toEqual(['ü']);
  });
});

describe('completion chunks', () => {
  it("reads vLLM's token_ids and aligned logprobs; top-k sorted, an extra sampled token dropped by the caller's k", () => {
    const c = parseOpenAIChunk(
      {
        choices: [
          {
            text: 'ab',
            token_ids: [5, 7],
            logprobs: { tokens: ['token_id:5', 'token_id:7'], token_logprobs: [-0.1, -2], top_logprobs: [{ 'token_id:5': -0.1, 'token_id:9': -3 }, { 'token_id:8': -0.5, 'token_id:7': -2 }] },
            finish_reason: null,
          },
        ],
      },
      noPieces,
    );
    expect(c.tokens).toEqual([
      { id: 5, logprob: -0.1, top: [{ token: 5, logprob: -0.1 }, { token: 9, logprob: -3 }] },
      { id: 7, logprob: -2, top: [{ token: 8, logprob: -0.5 }, { token: 7, logprob: -2 }] },
    ]);
    expect(c.finish).toBeUndefined();
  });

  it('takes ids from `token_id:N` names when a server has no token_ids, and token texts through the vocabulary', () => {
    const c = parseOpenAIChunk({ choices: [{ text: 'x', logprobs: { tokens: ['token_id:3'], token_logprobs: [-1], top_logprobs: [{ x: -1, y: -2, zz: -3 }] }, finish_reason: 'length' }] }, () => new Map([['x', 3], ['y', 4]]));
    expect(c).toEqual({ tokens: [{ id: 3, logprob: -1, top: [{ token: 3, logprob: -1 }, { token: 4, logprob: -2 }] }], finish: 'length' });
  });

  it("reads llama.cpp's per-token logprob objects", () => {
    const c = parseOpenAIChunk({ choices: [{ text: 'q', logprobs: { content: [{ id: 11, token: 'q', logprob: -0.2, top_logprobs: [{ id: 11, logprob: -0.2 }] }] } }] }, noPieces);
    expect(c.tokens).toEqual([{ id: 11, logprob: -0.2, top: [{ token: 11, logprob: -0.2 }] }]);
  });

  it('refuses text without token ids, and passes usage-only chunks', () => {
    expect(() => parseOpenAIChunk({ choices: [{ text: 'hello', finish_reason: null }] }, noPieces)).toThrow(/text without its token ids/);
    expect(parseOpenAIChunk({ choices: [], usage: { completion_tokens: 3 } }, noPieces)).toEqual({ tokens: [] });
    expect(parseOpenAIChunk({ choices: [{ text: '', token_ids: [], finish_reason: 'stop' }] }, noPieces)).toEqual({ tokens: [], finish: 'stop' });
  });

  it('retries an error a server sends mid-stream, unless it refused the request', () => {
    expect(() => parseOpenAIChunk({ error: { message: 'CUDA out of memory', code: 500 } }, noPieces)).toThrow(TransientFailure);
    expect(() => parseOpenAIChunk({ error: { message: 'bad logprobs', code: 400 } }, noPieces)).toThrow(RemoteServerError);
  });

  it("reads llama.cpp's /completion stream: one id a chunk, the count it generated, every id at the end", () => {
    const d = dialectOf('llamacpp');
    expect(d.parse({ content: 'a', tokens: [4], tokens_predicted: 2, stop: false, completion_probabilities: [{ id: 4, logprob: -1, top_logprobs: [{ id: 4, logprob: -1 }] }] }, noPieces)).toEqual({
      tokens: [{ id: 4, logprob: -1, top: [{ token: 4, logprob: -1 }] }],
      generated: 2,
    });
    expect(d.parse({ content: '', tokens: [1, 4, 9], tokens_predicted: 3, stop: true, stop_type: 'eos' }, noPieces)).toEqual({ tokens: [], finish: 'stop', generated: 3, allTokens: [1, 4, 9] });
    expect(d.parse({ tokens: [1], stop: true, stop_type: 'limit' }, noPieces).finish).toBe('length');
  });
});

describe('requests', () => {
  const params = { model: 'm', prompt: [1, 2], maxTokens: 9, sampler: { temperature: 0.6, topP: 0.95, seed: 77 }, ignoreEos: false };

  it('sends each server every sampling setting, the seed, and what it needs to return token ids', () => {
    const vllm = dialectOf('vllm').body(params);
    expect(vllm).toMatchObject({ prompt: [1, 2], max_tokens: 9, temperature: 0.6, top_p: 0.95, top_k: -1, min_p: 0, seed: 77, stream: true, return_token_ids: true, return_tokens_as_token_ids: true, logprobs: 0, repetition_penalty: 1 });
    const sglang = dialectOf('sglang').body(params);
    expect(sglang.return_tokens_as_token_ids).toBeUndefined();
    expect(sglang.logprobs).toBeUndefined();
    expect(dialectOf('lynx').body({ ...params, logprobs: 20 })).toMatchObject({ sampler_seed: 77, seed: 77, logprobs: 20 });
    const llama = dialectOf('llamacpp').body({ ...params, sampler: {}, logprobs: 0 });
    // Greedy by default, as the local engine; the local chain's order; ids of every token.
    expect(llama).toMatchObject({ temperature: 0, top_k: 0, top_p: 1, min_p: 0, samplers: ['temperature', 'top_k', 'top_p', 'min_p'], return_tokens: true, n_probs: 1, cache_prompt: true });
  });

  it('names the server kind from /v1/models', () => {
    expect(['vllm', 'sglang', 'llamacpp', 'lynx', 'openai', undefined].map(serverKindOf)).toEqual(['vllm', 'sglang', 'llamacpp', 'lynx', 'openai', 'openai']);
  });

  it('takes a base URL with or without /v1', () => {
    expect(rootOf('http://h:8000/v1/')).toBe('http://h:8000');
    expect(rootOf('http://h:8000')).toBe('http://h:8000');
    expect(rootOf('https://api.example/proxy/v1')).toBe('https://api.example/proxy');
    expect(() => rootOf('h:8000')).toThrow(/must be an http/);
    expect(() => rootOf('not a url')).toThrow(/is not a URL/);
  });
});

describe('in-flight limit', () => {
  it('queues new families at the limit, lets a family with a request open probe past it, and drops aborted waiters', async () => {
    const limit = new InflightLimit(1);
    const a = new RequestFamily();
    const b = new RequestFamily();
    await limit.enter(a);
    // a's trace streams and a probe of it starts: it must not wait behind its own trace.
    await limit.enter(a);
    expect(limit.active).toBe(2);
    let bIn = false;
    const bWaits = limit.enter(b).then(() => (bIn = true));
    const controller = new AbortController();
    const c = limit.enter(new RequestFamily(), controller.signal);
    controller.abort(new Error('gone'));
    await expect(c).rejects.toThrow('gone');
    limit.leave(a);
    await Promise.resolve();
    expect(bIn).toBe(false); // still 1 open, at the limit
    limit.leave(a);
    await bWaits;
    expect([limit.active, limit.waiting]).toEqual([1, 0]);
  });
});

describe('retries', () => {
  it('retries overload and server faults, not refusals', () => {
    expect([408, 429, 500, 502, 503, 504, 529].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 422].some(isRetryableStatus)).toBe(false);
  });

  it('backs off exponentially with jitter, capped, and waits at least what Retry-After says', () => {
    const rng = new Rng(1);
    const p = { ...DEFAULT_RETRY, baseDelayMs: 100, maxDelayMs: 1000 };
    for (let attempt = 1; attempt <= 8; attempt++) {
      const exp = Math.min(1000, 100 * 2 ** (attempt - 1));
      const ms = backoffMs(p, attempt, rng);
      expect(ms).toBeGreaterThanOrEqual(exp / 2);
      expect(ms).toBeLessThanOrEqual(exp);
    }
    expect(backoffMs(p, 1, rng, 700)).toBe(700);
    expect(backoffMs(p, 1, rng, 5000)).toBe(1000);
    expect(retryAfterMs('2')).toBe(2000);
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(retryAfterMs('soon')).toBeUndefined();
  });
});
