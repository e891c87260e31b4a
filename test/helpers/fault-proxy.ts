/**
 * An HTTP proxy in front of a test server that fails a share of the generation requests the ways real deployments do:
 * 503 and 429 (with Retry-After) before any byte, a connection cut in the middle of a stream, and a stream that stalls
 * (sends nothing until the client's idle timeout gives up on it). Where a stream is cut is drawn from a seeded RNG.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Rng } from '../../src/util/rng.js';

export interface FaultProxyOptions {
  /** Share of POST /v1/completions requests that fail (the kinds in turn). */
  failRate: number;
  /** How long a stalled stream stays silent before the proxy drops it, ms. */
  stallMs: number;
  seed?: number;
}

export interface FaultProxy {
  url: string;
  /** Requests failed so far, by kind. */
  faults: Record<'503' | '429' | 'cut' | 'stall', number>;
  requests: number;
  close(): Promise<void>;
}

const KINDS = ['503', 'cut', '429', 'stall'] as const;

export async function startFaultProxy(target: string, o: FaultProxyOptions): Promise<FaultProxy> {
  const rng = new Rng(o.seed ?? 7);
  const to = new URL(target);
  const faults = { '503': 0, '429': 0, cut: 0, stall: 0 };
  const state = { requests: 0 };
  let failed = 0;
  const open = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    open.add(res);
    res.on('close', () => open.delete(res));
    const generation = req.method === 'POST' && req.url === '/v1/completions';
    if (generation) state.requests++;
    // Exactly `failRate` of the requests fail, spread evenly (1 in 5 for 0.2), the kinds in turn: every kind occurs
    // in a short run, and which request fails depends only on the order they arrive in.
    const kind = generation && Math.floor(state.requests * o.failRate) > failed ? KINDS[failed++ % KINDS.length] : undefined;
    if (kind === '503' || kind === '429') {
      faults[kind]++;
      req.resume();
      res.writeHead(Number(kind), { 'content-type': 'application/json', ...(kind === '429' ? { 'retry-after': '0' } : {}) });
      res.end(JSON.stringify({ error: { message: kind === '429' ? 'rate limited' : 'overloaded', type: 'server_error' } }));
      return;
    }
    if (kind === 'stall') {
      faults.stall++;
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      setTimeout(() => res.destroy(), o.stallMs).unref();
      return;
    }
    const up = http.request({ host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      // The client sees the response begin before any cut, as when a server dies mid-stream.
      res.flushHeaders();
      if (kind !== 'cut') {
        upRes.pipe(res);
        return;
      }
      // A cut stream passes part of its bytes (some, never all: each chunk waits for the next), then the connection
      // drops.
      faults.cut++;
      let cutAt = 1 + Math.floor(rng.next() * 400);
      let held: Buffer | undefined;
      const cut = (c: Buffer) => {
        res.write(c.subarray(0, Math.max(1, Math.min(cutAt, c.length - 1))));
        upRes.destroy();
        res.destroy();
      };
      upRes.on('data', (c: Buffer) => {
        if (held) {
          if (held.length >= cutAt) return cut(held);
          cutAt -= held.length;
          res.write(held);
        }
        held = c;
      });
      upRes.on('end', () => (held ? cut(held) : res.destroy()));
      upRes.on('error', () => res.destroy());
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    faults,
    get requests() {
      return state.requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const r of open) r.destroy();
        server.close(() => resolve());
      }),
  };
}
