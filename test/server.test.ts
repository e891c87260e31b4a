/**
 * `lynx serve` against the official `openai` client and raw HTTP, on the shipped demo reasoner: chat (plain and
 * streamed), reasoning separated from the answer, early exit equal to `lynx run` for the same seed, usage, errors as
 * OpenAI's, admission, disconnects, text completions with token ids, metrics.
 */
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shippedDemo } from '../src/demo/shipped.js';
import { answerWithLynx } from '../src/pipeline/answer.js';
import { buildApp } from '../src/server/app.js';
import { ModelHost } from '../src/server/host.js';
import { ZST_INSTRUCTION } from '../src/tasks/prompts.js';
import { loadBenchmark } from '../src/tasks/registry.js';

const demo = shippedDemo();
const KEY = 'test-key';
let host: ModelHost;
let app: ReturnType<typeof buildApp>;
let base: string;
let client: OpenAI;

const [p0, p1] = loadBenchmark('demo', { limit: 2 });
const question = (p = p0!) => `${p.problem}\n${ZST_INSTRUCTION}`;
const ask = (content: string) => [{ role: 'user' as const, content }];

async function start(h: ModelHost, o: Parameters<typeof buildApp>[1] = {}) {
  const a = buildApp(h, o);
  await a.listen({ host: '127.0.0.1', port: 0 });
  return { app: a, url: `http://127.0.0.1:${(a.server.address() as AddressInfo).port}` };
}

beforeAll(async () => {
  host = new ModelHost({ model: demo.model, probe: demo.root, servedName: 'lynx-demo', parallel: 2, queue: 4, contextPerRequest: 1024, threads: 1, kvType: 'f32' });
  ({ app, url: base } = await start(host, { apiKey: KEY, keepAliveMs: 50 }));
  // Before the model is loaded the server answers, and says it is not ready.
  const early = await fetch(`${base}/health`);
  expect(early.status).toBe(503);
  expect(await early.json()).toEqual({ status: 'loading' });
  await host.load();
  client = new OpenAI({ baseURL: `${base}/v1`, apiKey: KEY, maxRetries: 0 });
});

afterAll(async () => {
  await app?.close();
  host?.dispose();
});

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

describe('lynx serve', () => {
  it('is healthy once loaded and lists its model', async () => {
    expect(await (await fetch(`${base}/health`)).json()).toEqual({ status: 'ok' });
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['lynx-demo']);
  });

  it('answers a chat with the reasoning apart from the answer, and usage that adds up', async () => {
    const r = await client.chat.completions.create({ model: 'lynx-demo', messages: ask(question()), seed: 3, max_tokens: 600 });
    const msg = r.choices[0]!.message as typeof r.choices[0]['message'] & { reasoning_content?: string };
    expect(msg.reasoning_content!.length).toBeGreaterThan(20);
    expect(msg.reasoning_content).not.toContain('</think>');
    expect(msg.content).toMatch(/\\boxed\{-?\d+\}/);
    expect(r.choices[0]!.finish_reason).toBe('stop');
    const u = r.usage!;
    expect(u.total_tokens).toBe(u.prompt_tokens + u.completion_tokens);
    expect(u.completion_tokens_details!.reasoning_tokens).toBeGreaterThan(0);
    expect(u.completion_tokens_details!.reasoning_tokens).toBeLessThan(u.completion_tokens);
  });

  it('streams role, reasoning deltas, content deltas, the finish reason and usage, and the same text as a plain request', async () => {
    const body = { model: 'lynx-demo', messages: ask(question(p1)), seed: 4, max_tokens: 600 };
    const plain = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    const kinds: string[] = [];
    let reasoning = '';
    let content = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const c = chunk.choices[0];
      if (!c) continue;
      const d = c.delta as typeof c.delta & { reasoning_content?: string };
      if (d.role) kinds.push('role');
      if (d.reasoning_content) (kinds.push('reasoning'), (reasoning += d.reasoning_content));
      if (d.content) (kinds.push('content'), (content += d.content));
      if (c.finish_reason) finish = c.finish_reason;
    }
    expect(kinds[0]).toBe('role');
    // Reasoning first, then the answer: never back.
    expect(kinds.lastIndexOf('reasoning')).toBeLessThan(kinds.indexOf('content'));
    const m = plain.choices[0]!.message as { content: string; reasoning_content?: string };
    expect(reasoning).toBe(m.reasoning_content);
    expect(content).toBe(m.content);
    expect(finish).toBe('stop');
    expect(usage).toEqual(plain.usage);
  });

  it('exits early as `lynx run` does for the same seed: same answer, tokens and exit', async () => {
    let checked = 0;
    for (const [i, p] of [p0!, p1!].entries()) {
      const seed = 11 + i;
      const local = await answerWithLynx({ model: host.ready.model, probe: demo.root, rule: 'lynx', delta: 0.3, question: p.problem, maxTokens: 600, sampler: { temperature: 0.6, topP: 0.95 }, seed, exitCue: 'paper' });
      const r = (await (client.chat.completions.create as (b: unknown) => Promise<unknown>)({
        model: 'lynx-demo',
        messages: ask(question(p)),
        seed,
        max_tokens: 600,
        early_exit: { method: 'lynx', delta: 0.3 }, // a vLLM-style extra field
      })) as OpenAI.ChatCompletion & { early_exit: Record<string, unknown> };
      expect(r.usage!.completion_tokens).toBe(local.outcome.tokens.total);
      expect(r.usage!.completion_tokens_details!.reasoning_tokens).toBe(local.outcome.tokens.reasoning);
      expect(r.early_exit.triggered).toBe(local.outcome.exit !== null);
      if (local.outcome.exit) {
        checked++;
        expect(r.early_exit.event).toBe(local.outcome.exit.event);
        expect(r.early_exit.position).toBe(local.outcome.exit.position);
        expect(r.early_exit.score).toBeCloseTo(local.outcome.exit.score!, 6);
        expect(r.choices[0]!.message.content).toContain(`\\boxed{${local.answer}}`);
      }
    }
    expect(checked).toBeGreaterThan(0); // at least one of them did exit
  });

  it('streams the cue events with their scores and the calibrated threshold', async () => {
    const res = await post('/v1/chat/completions', { messages: ask(question()), seed: 11, max_tokens: 600, stream: true, early_exit: { method: 'lynx', delta: 0.3 } });
    const events = (await res.text())
      .split('\n\n')
      .filter((l) => l.startsWith('data: {'))
      .map((l) => JSON.parse(l.slice(6)))
      .filter((c) => c.cue_event)
      .map((c) => c.cue_event);
    expect(events.length).toBeGreaterThan(0);
    for (const e of events) {
      expect(e.score).toBeGreaterThan(0);
      expect(e.threshold).toBeGreaterThan(0);
      expect(e.exit).toBe(e.score >= e.threshold);
    }
  });

  it('reports errors as OpenAI does, with the status the client maps', async () => {
    const err = async (p: Promise<unknown>) => p.then(() => null, (e) => e as APIError);
    const e404 = await err(client.chat.completions.create({ model: 'gpt-9', messages: ask('hi') }));
    expect(e404).toBeInstanceOf(APIError);
    expect([e404!.status, (e404!.error as { code?: string }).code]).toEqual([404, 'model_not_found']);
    const e400 = await err(client.chat.completions.create({ model: 'lynx-demo', messages: ask('hi'), max_tokens: 100_000 }));
    expect([e400!.status, (e400!.error as { param?: string }).param, (e400!.error as { code?: string }).code]).toEqual([400, 'max_tokens', 'context_length_exceeded']);
    const noKey = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong', maxRetries: 0 });
    expect((await err(noKey.models.list()))!.status).toBe(401);
  });

  it('names the bad field of a raw request, ignores unknown ones, and refuses what it cannot parse', async () => {
    const cases: [unknown, number, string | null][] = [
      [{ messages: ask('hi'), temperature: 'hot' }, 400, 'temperature'],
      [{ messages: ask('hi'), n: 2 }, 400, 'n'],
      [{ messages: [] }, 400, 'messages'],
      [{ messages: [{ role: 'robot', content: 'x' }] }, 400, 'messages[0].role'],
      [{ messages: ask('hi'), early_exit: { method: 'lynx', delta: 1.5 } }, 400, 'early_exit.delta'],
      [{ messages: ask('hi'), early_exit: { method: 'lynx', delta: 0.42 } }, 400, 'early_exit.delta'],
      [{ messages: ask('hi'), early_exit: { method: 'magic' } }, 400, 'early_exit.method'],
      [{ messages: ask('hi'), early_exit: { method: 'lynx', delta: 0.1, extra: 1 } }, 400, 'early_exit'],
      ['{"messages": [', 400, null],
      [{ messages: ask('x'.repeat(2_000_000)) }, 413, null],
      [{ messages: ask('hi'), top_h: 0.4, top_p: 0.9 }, 400, 'top_p'],
      [{ messages: ask('hi'), mirostat: 3 }, 400, 'mirostat'],
      [{ messages: ask('hi'), annealing: { tau_max: 1.2, tau_min: 2, decay: 10 } }, 400, 'annealing.tau_min'],
    ];
    for (const [body, status, param] of cases) {
      const res = await post('/v1/chat/completions', body);
      const j = (await res.json()) as { error: { param: string | null; message: string; type: string } };
      expect({ body: JSON.stringify(body).slice(0, 60), status: res.status, param: j.error.param }).toEqual({ body: JSON.stringify(body).slice(0, 60), status, param });
      expect(j.error.message.length).toBeGreaterThan(5);
    }
    // vLLM ignores keys it does not know; so do we.
    const ok = await post('/v1/chat/completions', { messages: ask(question()), max_tokens: 8, seed: 1, frobnicate: true, top_k: 20, min_p: 0.05 });
    expect(ok.status).toBe(200);
    expect((await fetch(`${base}/v1/nope`, { headers: { authorization: `Bearer ${KEY}` } })).status).toBe(404);
  });

  it('samples with Mirostat, Top-H and annealed temperature per request, reproducibly for a seed', async () => {
    for (const extra of [{ mirostat: 2, mirostat_tau: 1.5, mirostat_eta: 0.1 }, { top_h: 0.4, temperature: 1.5 }, { annealing: { tau_max: 1.2, tau_min: 0.1, decay: 50, warmup: 2 } }]) {
      const body = { prompt: question(), max_tokens: 24, seed: 3, return_token_ids: true, ...extra };
      const a = (await (await post('/v1/completions', body)).json()) as { choices: { token_ids: number[] }[] };
      const b = (await (await post('/v1/completions', body)).json()) as { choices: { token_ids: number[] }[] };
      expect(a.choices[0]!.token_ids.length).toBeGreaterThan(0);
      expect(b.choices[0]!.token_ids).toEqual(a.choices[0]!.token_ids);
    }
  });

  it('frees a request’s sequences the moment its client disconnects', async () => {
    const controller = new AbortController();
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ messages: ask(question()), max_tokens: 800, stream: true, seed: 2 }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.read();
    expect(host.admission.active).toBe(1);
    controller.abort();
    const { context } = host.ready;
    for (let i = 0; i < 500 && (host.admission.active > 0 || context.freeSlots < context.nSeqMax); i++) await new Promise((r) => setTimeout(r, 20));
    expect(host.admission.active).toBe(0);
    expect(context.freeSlots).toBe(context.nSeqMax);
  });

  it('stops at a stop string without sending any of it', async () => {
    const r = await client.completions.create({ model: 'lynx-demo', prompt: question(), max_tokens: 200, seed: 5, stop: ['answer'] } as never);
    const text = (r as OpenAI.Completion).choices[0]!.text;
    expect((r as OpenAI.Completion).choices[0]!.finish_reason).toBe('stop');
    expect(text).not.toContain('answer');
    expect(text.length).toBeGreaterThan(0);
  });

  it('continues token-id prompts and returns token ids and log-probabilities (for remote generation)', async () => {
    const { model } = host.ready;
    const prompt = model.tokenize(`<｜User｜>${question()}<｜Assistant｜><think>\n`, { parseSpecial: true });
    const res = await post('/v1/completions', { prompt, max_tokens: 12, seed: 9, logprobs: 2, return_token_ids: true, temperature: 0.6 });
    const j = (await res.json()) as { choices: { text: string; finish_reason: string; token_ids: number[]; logprobs: { tokens: string[]; token_logprobs: number[]; top_logprobs: Record<string, number>[] } }[]; prompt_token_ids: number[]; usage: { completion_tokens: number } };
    const c = j.choices[0]!;
    expect(j.prompt_token_ids).toEqual(prompt);
    // No early exit: max_tokens is a hard cap, as on any OpenAI server (no answer forced at the budget).
    expect([c.finish_reason, j.usage.completion_tokens]).toEqual(['length', 12]);
    expect(c.token_ids).toHaveLength(12);
    expect(model.detokenize(c.token_ids)).toBe(c.text);
    expect(c.logprobs.token_logprobs).toHaveLength(c.token_ids.length);
    for (const lp of c.logprobs.token_logprobs) expect(lp).toBeLessThanOrEqual(0);
    for (const top of c.logprobs.top_logprobs) expect(Object.keys(top).length).toBeGreaterThanOrEqual(1);
  });

  it('refuses with 429 beyond its queue, and counts requests in /metrics', async () => {
    const small = new ModelHost({ model: demo.model, servedName: 'd', parallel: 1, queue: 0, contextPerRequest: 512, threads: 1 });
    const s = await start(small);
    try {
      await small.load();
      const req = () => fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: ask(question()), max_tokens: 200, seed: 1 }) });
      const [a, b] = await Promise.all([req(), req()]);
      expect([a.status, b.status].sort()).toEqual([200, 429]);
      const text = await (await fetch(`${s.url}/metrics`)).text();
      expect(text).toMatch(/lynx_requests_total\{endpoint="\/v1\/chat\/completions",status="200"\} 1/);
      expect(text).toMatch(/lynx_requests_total\{endpoint="\/v1\/chat\/completions",status="429"\} 1/);
      expect(text).toMatch(/lynx_completion_tokens_total \d+/);
      expect(text).toContain('lynx_time_to_first_token_seconds_bucket');
    } finally {
      await s.app.close();
      small.dispose();
    }
  });

  it('drafts per request with its heads: greedy text unchanged, drafts reported; layer exit refused beside a draft vocabulary', async () => {
    const heads = resolve(demo.root, 'heads');
    const drafting = new ModelHost({ model: demo.model, servedName: 'd', parallel: 1, queue: 2, contextPerRequest: 1024, threads: 1, kvType: 'f32', heads, draftVocab: 300 });
    const s = await start(drafting);
    try {
      await drafting.load();
      const body = { messages: ask(question(p1)), max_tokens: 120, temperature: 0 };
      const req = (b: unknown) => fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
      const plain = await (await req(body)).json();
      const drafted = await (await req({ ...body, draft: { type: 'heads', draft_max: 4 } })).json();
      expect(drafted.choices[0].message).toEqual(plain.choices[0].message);
      expect(drafted.draft).toMatchObject({ lossless: true });
      expect(drafted.draft.mode).toContain('draft vocab 300');
      expect(drafted.draft.accepted).toBeGreaterThan(0);
      const exit = await req({ ...body, draft: { type: 'layer_exit' } });
      expect(exit.status).toBe(400);
      expect((await exit.json()).error.message).toMatch(/layer exit needs heads over the whole vocabulary/);
    } finally {
      await s.app.close();
      drafting.dispose();
    }
  });
});
