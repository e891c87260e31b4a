/**
 * `lynx serve` under fuzz: over 1,000 malformed or hostile requests (bad JSON, wrong types, huge fields and budgets,
 * invalid UTF-8, wrong content types and paths, prototype keys, deep nesting, early disconnects and half-sent bodies)
 * against an in-process server on the shipped demo model. The server stays up, answers each malformed request with a
 * 4xx and a JSON error, and leaks no sequence: every context slot is free and nothing runs or waits at the end.
 * Inputs are drawn from a seeded RNG, so a failure replays.
 */
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shippedDemo } from '../src/demo/shipped.js';
import { buildApp } from '../src/server/app.js';
import { ModelHost } from '../src/server/host.js';
import { Rng } from '../src/util/rng.js';

const demo = shippedDemo();
let host: ModelHost;
let app: ReturnType<typeof buildApp>;
let port: number;
let base: string;
let slots: number;

beforeAll(async () => {
  host = new ModelHost({ model: demo.model, probe: demo.root, servedName: 'lynx-demo', parallel: 2, queue: 8, contextPerRequest: 512, threads: 1, kvType: 'f32' });
  app = buildApp(host, { keepAliveMs: 50 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
  await host.load();
  slots = host.ready.context.freeSlots;
});

afterAll(async () => {
  await app?.close();
  host?.dispose();
});

const rng = new Rng(2026);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.next() * xs.length)]!;
const int = (n: number) => Math.floor(rng.next() * n);
const randomBytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
const valid = () => ({ model: 'lynx-demo', messages: [{ role: 'user', content: 'What is 2 + 3?' }], max_tokens: 8, seed: int(100) });

/** A malformed or hostile request: what to send and to which endpoint. */
interface Case {
  kind: string;
  path: string;
  body: string | Buffer;
  contentType?: string;
  method?: string;
}

/** Values each field refuses (a value it accepts would not be a malformed request). */
const COMMON_INVALID: Record<string, unknown[]> = {
  model: [5, true, [], {}],
  max_tokens: ['x', 1.5, true, [], {}, -3],
  temperature: ['x', -1, 1e308, [], {}, true],
  top_p: ['x', -0.5, 1.5, [], {}],
  seed: ['x', 1.5, [], {}, true],
  stream: ['x', 1, [], {}],
  early_exit: ['lynx', 5, [1], true],
};
const CHAT_INVALID: Record<string, unknown[]> = {
  ...COMMON_INVALID,
  messages: [null, 'x', 5, {}, [1], [null], true],
  max_completion_tokens: ['x', -1, 1.5, []],
  stop: [5, [1, 2], {}, true],
  n: ['x', 1.5, -1, 0, []],
  logprobs: ['x', 5, [], {}],
  top_logprobs: ['x', -1, 1.5, []],
  stream_options: ['x', 5, [], true],
};
const COMPLETION_INVALID: Record<string, unknown[]> = {
  ...COMMON_INVALID,
  prompt: [null, 5, {}, true, [{}], [[1], 'a'], [true]],
  logprobs: ['x', -1, 1.5, [], {}],
  echo: ['x', 5, []],
};

function malformed(): Case {
  const chat = rng.next() < 0.6;
  const path = chat ? '/v1/chat/completions' : '/v1/completions';
  const good: Record<string, unknown> = chat ? valid() : { model: 'lynx-demo', prompt: 'Once upon', max_tokens: 8 };
  switch (pick(['json', 'json', 'type', 'type', 'type', 'budget', 'utf8', 'content', 'messages', 'early', 'hostile', 'tokens'])) {
    case 'json': {
      const text = JSON.stringify(good);
      const body = pick([
        text.slice(0, int(text.length)),
        text + pick(['}', ',', ']', 'x']),
        text.replace(':', pick(['', '::', ':,'])),
        randomBytes(1 + int(64)).toString('latin1'),
        pick(['', ' ', 'null', '[]', '"str"', '42', 'true', '{', '{"model":}', "{'model': 'x'}", '{"a":1,}', 'NaN', '{"messages": [Infinity]}']),
      ]);
      return { kind: 'bad JSON', path, body };
    }
    case 'type': {
      const f = pick(Object.keys(chat ? CHAT_INVALID : COMPLETION_INVALID));
      const v = pick((chat ? CHAT_INVALID : COMPLETION_INVALID)[f]!);
      return { kind: 'wrong type', path, body: JSON.stringify({ ...good, [f]: v }) };
    }
    case 'budget':
      return { kind: 'huge max_tokens', path, body: JSON.stringify({ ...good, max_tokens: pick([1e9, 2 ** 31, 2 ** 53, -1, 0, 1e308, 1e6 + int(1e6)]) }) };
    case 'utf8': {
      const prefix = Buffer.from(JSON.stringify(good).slice(0, -2));
      return { kind: 'invalid UTF-8', path, body: Buffer.concat([prefix, randomBytes(1 + int(8)).map((b) => b | 0x80), Buffer.from('"}')]) };
    }
    case 'content':
      return pick<Case>([
        { kind: 'wrong content type', path, body: JSON.stringify(good), contentType: pick(['text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded']) },
        { kind: 'wrong path', path: pick(['/v1/chat', '/v1/../etc/passwd', '/v2/completions', '/v1/embeddings', '/%00', '/v1/completions/../../x']), body: JSON.stringify(good) },
        { kind: 'wrong method', path, body: '', method: pick(['PUT', 'DELETE', 'PATCH']) },
      ]);
    case 'messages':
      return {
        kind: 'bad messages',
        path: '/v1/chat/completions',
        body: JSON.stringify({
          ...valid(),
          messages: pick<unknown>([[], [{}], [{ role: 'user' }], [{ role: 'wizard', content: 'x' }], [{ role: 'user', content: 5 }], [{ role: 'user', content: [{ type: 'image_url', image_url: 'x' }] }], 'hello', { role: 'user', content: 'x' }]),
        }),
      };
    case 'early':
      return {
        kind: 'bad early_exit',
        path,
        body: JSON.stringify({ ...good, early_exit: pick<unknown>([{ method: 'magic' }, { method: 'lynx', delta: 1.5 }, { method: 'lynx', delta: 0.123 }, { method: 'lynx', delta: 'x' }, { method: 'deer', threshold: 2 }, { method: 'dynasor', agreement: -1 }, 'lynx', [1]]) }),
      };
    case 'hostile':
      return pick<Case>([
        { kind: 'prototype keys', path, body: `{"__proto__": {"max_tokens": 1e9}, "constructor": {"prototype": {"x": 1}}, "model": "lynx-demo"}` },
        { kind: 'deep nesting', path, body: '['.repeat(5000 + int(5000)) + ']'.repeat(5000) },
        { kind: 'huge field', path, body: JSON.stringify({ ...good, model: 'm'.repeat(2 << 20) }) },
        { kind: 'unknown model', path, body: JSON.stringify({ ...good, model: 'gpt-5' + 'x'.repeat(int(100)) }) },
      ]);
    default:
      return { kind: 'bad prompt tokens', path: '/v1/completions', body: JSON.stringify({ model: 'lynx-demo', max_tokens: 4, prompt: pick<unknown>([[-1], [1e9], [1.5], [[]], [null], Array.from({ length: 5000 }, () => int(600))]) }) };
  }
}

async function send(c: Case): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${base}${c.path}`, {
    method: c.method ?? 'POST',
    headers: { 'content-type': c.contentType ?? 'application/json' },
    body: c.method && c.method !== 'POST' ? undefined : typeof c.body === 'string' ? c.body : new Uint8Array(c.body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json };
}

/** A request cut off by the client: mid-headers, mid-body, or after the body while it decodes. */
function disconnect(): Promise<void> {
  return new Promise((res) => {
    const body = JSON.stringify({ ...valid(), max_tokens: 200, stream: rng.next() < 0.5 });
    const head = `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`;
    const full = head + body;
    const cut = pick([int(head.length), head.length + int(body.length), full.length]);
    const s = connect(port, '127.0.0.1', () => {
      s.write(full.slice(0, cut));
      setTimeout(() => s.destroy(), int(40));
    });
    s.on('error', () => {});
    s.on('close', () => res());
  });
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

describe('lynx serve under fuzz', () => {
  it('answers 1,000 malformed requests with a 4xx and a JSON error, survives 100 disconnects, and leaks nothing', async () => {
    const counts = new Map<string, { n: number; statuses: Set<number> }>();
    const failures: string[] = [];
    const cases = Array.from({ length: 1000 }, malformed);
    for (let i = 0; i < cases.length; i += 16) {
      await Promise.all(
        cases.slice(i, i + 16).map(async (c) => {
          const r = await send(c);
          const entry = counts.get(c.kind) ?? { n: 0, statuses: new Set() };
          entry.n++;
          entry.statuses.add(r.status);
          counts.set(c.kind, entry);
          const err = (r.json as { error?: { message?: unknown } } | undefined)?.error;
          if (r.status < 400 || r.status >= 500 || typeof err?.message !== 'string') {
            failures.push(`${c.kind} ${c.path} -> ${r.status} ${JSON.stringify(r.json)?.slice(0, 120)} for ${String(c.body).slice(0, 120)}`);
          }
        }),
      );
    }
    for (let i = 0; i < 100; i += 10) await Promise.all(Array.from({ length: 10 }, disconnect));
    expect(failures).toEqual([]);
    expect([...counts.values()].reduce((n, c) => n + c.n, 0)).toBe(1000);
    expect(counts.size).toBeGreaterThanOrEqual(12);

    // Still up and serving, and every sequence handed back.
    const ok = await send({ kind: 'valid', path: '/v1/chat/completions', body: JSON.stringify(valid()) });
    expect(ok.status).toBe(200);
    for (let t = 0; t < 200 && (host.ready.context.freeSlots !== slots || (await metric('lynx_requests_running')) !== 0); t++) await new Promise((r) => setTimeout(r, 50));
    expect(host.ready.context.freeSlots).toBe(slots);
    expect(await metric('lynx_requests_running')).toBe(0);
    expect(await metric('lynx_queue_depth')).toBe(0);
    expect(await (await fetch(`${base}/health`)).json()).toEqual({ status: 'ok' });
    // The table of docs/reliability.md, printed for whoever updates it.
    process.stdout.write(`fuzz cases: ${JSON.stringify(Object.fromEntries([...counts].map(([k, v]) => [k, { n: v.n, statuses: [...v.statuses].sort() }])))}\n`);
  });
});
