/**
 * Load on `lynx serve` and, in the same run, on llama.cpp's own `llama-server` built from the source bundled with the
 * pinned node-llama-cpp (the same kernels): N concurrent clients each streaming text completions back to back for a
 * fixed time. Per server and N: aggregate streamed tokens/s, time to first token and inter-token latency (p50, p99),
 * errors, and the server's resident memory sampled every second (flat means no leak).
 *
 * Both servers get the same model file, prompt, max_tokens, sampling, slot count and context per slot; lynx decodes
 * without early exit here (an early-exit run is reported apart, since it does different work).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createParser } from 'eventsource-parser';

export interface LoadLevel {
  streams: number;
  seconds: number;
  requests: number;
  errors: number;
  /** The errors by message (an HTTP status, a stream's error object, a client exception), so a peer's can be read. */
  errorKinds?: Record<string, number>;
  tokens: number;
  tokensPerSecond: number;
  ttftMs: { p50: number; p99: number };
  itlMs: { p50: number; p99: number };
  /** Server RSS (MiB) at the start and end of the level, and its largest value. */
  rssMiB: { start: number; end: number; max: number };
  /** The latency samples behind the percentiles (for pooling; left out of the results file). */
  samples?: { ttft: number[]; itl: number[] };
}

export interface ServerUnderLoad {
  name: string;
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface LoadOptions {
  prompt: string;
  maxTokens: number;
  levels: number[];
  seconds: number;
  /** Extra request fields (lynx's early_exit). */
  extra?: Record<string, unknown>;
  log?: (line: string) => void;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Start a server process and wait until /health says ok. */
export async function startServer(name: string, cmd: string, args: string[], port: number, timeoutMs = 600_000): Promise<ServerUnderLoad> {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  // A benchmark that is killed must not leave a server behind.
  const kill = () => proc.kill('SIGKILL');
  process.once('exit', kill);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => (kill(), process.exit(130)));
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr = (stderr + String(d)).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${name} exited (${proc.exitCode}): ${stderr}`);
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`${name} did not become healthy: ${stderr}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    name,
    url,
    process: proc,
    stop: async () => {
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r)));
    },
  };
}

function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

const pct = (xs: number[], q: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

/** One streamed completion: token arrival times (one per chunk with text), or an error. */
async function streamOnce(url: string, body: Record<string, unknown>, deadline: number): Promise<{ t0: number; times: number[]; error?: string }> {
  const t0 = performance.now();
  const times: number[] = [];
  try {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, stream: true }),
      signal: AbortSignal.timeout(Math.max(1000, deadline - Date.now() + 120_000)),
    });
    if (!res.ok || !res.body) return { t0, times, error: `HTTP ${res.status}` };
    let error: string | undefined;
    const parser = createParser({
      onEvent: (ev) => {
        if (ev.data === '[DONE]') return;
        const j = JSON.parse(ev.data) as { choices?: { text?: string }[]; error?: unknown };
        if (j.error) error = JSON.stringify(j.error);
        if (j.choices?.[0]?.text) times.push(performance.now());
      },
    });
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
    return { t0, times, error };
  } catch (e) {
    return { t0, times, error: (e as Error).message };
  }
}

/** Slices of one level pooled: tokens over time, every latency sample, memory from the first slice's start to the last's end. */
export function pool(levels: readonly LoadLevel[]): LoadLevel {
  const seconds = levels.reduce((a, l) => a + l.seconds, 0);
  const tokens = levels.reduce((a, l) => a + l.tokens, 0);
  const samples = (k: 'ttft' | 'itl') => levels.flatMap((l) => l.samples?.[k] ?? []);
  const ttft = samples('ttft');
  const itl = samples('itl');
  return {
    streams: levels[0]!.streams,
    seconds,
    requests: levels.reduce((a, l) => a + l.requests, 0),
    errors: levels.reduce((a, l) => a + l.errors, 0),
    ...(levels.some((l) => l.errorKinds) ? { errorKinds: mergeCounts(levels.map((l) => l.errorKinds ?? {})) } : {}),
    tokens,
    tokensPerSecond: tokens / seconds,
    ttftMs: { p50: pct(ttft, 0.5), p99: pct(ttft, 0.99) },
    itlMs: { p50: pct(itl, 0.5), p99: pct(itl, 0.99) },
    rssMiB: { start: levels[0]!.rssMiB.start, end: levels[levels.length - 1]!.rssMiB.end, max: Math.max(...levels.map((l) => l.rssMiB.max)) },
  };
}

function mergeCounts(parts: readonly Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of parts) for (const [k, n] of Object.entries(p)) out[k] = (out[k] ?? 0) + n;
  return out;
}

/** Run every level against one server. */
export async function loadServer(server: ServerUnderLoad, o: LoadOptions): Promise<LoadLevel[]> {
  const out: LoadLevel[] = [];
  const body = { prompt: o.prompt, max_tokens: o.maxTokens, temperature: 0.6, top_p: 0.95, ...o.extra };
  for (const streams of o.levels) {
    const pid = server.process.pid!;
    const rss: number[] = [rssMiB(pid)];
    const sampler = setInterval(() => rss.push(rssMiB(pid)), 1000);
    const deadline = Date.now() + o.seconds * 1000;
    const ttft: number[] = [];
    const itl: number[] = [];
    let tokens = 0;
    let requests = 0;
    let errors = 0;
    const errorKinds: Record<string, number> = {};
    const t0 = performance.now();
    const client = async (k: number) => {
      for (let i = 0; Date.now() < deadline; i++) {
        const r = await streamOnce(server.url, { ...body, seed: k * 100_000 + i }, deadline);
        requests++;
        if (r.error) {
          errors++;
          const kind = r.error.slice(0, 120);
          errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
        }
        tokens += r.times.length;
        if (r.times.length > 0) ttft.push(r.times[0]! - r.t0);
        for (let j = 1; j < r.times.length; j++) itl.push(r.times[j]! - r.times[j - 1]!);
      }
    };
    await Promise.all(Array.from({ length: streams }, (_, k) => client(k)));
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    rss.push(rssMiB(pid));
    const level: LoadLevel = {
      streams,
      seconds,
      requests,
      errors,
      ...(errors > 0 ? { errorKinds } : {}),
      tokens,
      tokensPerSecond: tokens / seconds,
      ttftMs: { p50: pct(ttft, 0.5), p99: pct(ttft, 0.99) },
      itlMs: { p50: pct(itl, 0.5), p99: pct(itl, 0.99) },
      rssMiB: { start: rss[0]!, end: rss[rss.length - 1]!, max: Math.max(...rss.filter(Number.isFinite)) },
    };
    Object.defineProperty(level, 'samples', { value: { ttft, itl }, enumerable: false });
    o.log?.(
      `  ${server.name} ${streams} streams: ${level.tokensPerSecond.toFixed(1)} tok/s, TTFT p50 ${level.ttftMs.p50.toFixed(0)} ms p99 ${level.ttftMs.p99.toFixed(0)} ms, ` +
        `ITL p50 ${level.itlMs.p50.toFixed(1)} ms p99 ${level.itlMs.p99.toFixed(1)} ms, ${requests} requests, ${errors} errors, RSS ${level.rssMiB.start.toFixed(0)} -> ${level.rssMiB.end.toFixed(0)} MiB`,
    );
    out.push(level);
  }
  return out;
}

/** The peer's binary, if it was built (see docs/server.md: built once from the bundled source, outside the repo). */
export function peerServerBinary(cacheRoot: string): string | undefined {
  const candidates = [process.env.LYNX_LLAMA_SERVER, `${cacheRoot}/llama.cpp/build/bin/llama-server`].filter((x): x is string => !!x);
  return candidates.find((p) => existsSync(p));
}
