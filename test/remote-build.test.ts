/**
 * `build-dataset --backend openai` against a real HTTP server: `lynx serve` on the shipped demo reasoner, started by
 * the test. The rollouts, forced exits and probes are generated there (token-id prompts, seeded sampling) and the
 * hidden states read here by local prefills of the same ids, so the dataset equals the local build's: the same
 * events, positions, answers and labels, and features within float tolerance (a prefill and a token-by-token decode
 * sum in another order; the demo model's weights are F16). It stays the same through a server that fails a fifth of
 * its requests (503, 429, streams cut mid-way, streams that stall past the idle timeout), resumes after an
 * interruption to the same bytes, and a server whose model tokenizes differently is refused before any work.
 *
 * llama.cpp's llama-server is not started here (CI does not build it): `npm run bench -- --suite remote` runs the
 * same comparison against it where bench/build-peer-server.sh has built it, and says so when it has not.
 */
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli/main.js';
import { shippedDemo } from '../src/demo/shipped.js';
import { buildDatasetStep, type BuildDatasetStepOptions } from '../src/pipeline/build-dataset.js';
import { readDataset, readManifest, type Dataset } from '../src/reasoning/lynx/dataset/store.js';
import { maxRelativeFeatureDiff } from '../src/reasoning/lynx/dataset/compare.js';
import { buildApp } from '../src/server/app.js';
import { ModelHost } from '../src/server/host.js';
import { VocabularyMismatchError } from '../src/backends/openai/index.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { buildTinyGguf } from './helpers/engine-models.js';

const demo = shippedDemo();
let tmp: string;
let host: ModelHost;
let app: ReturnType<typeof buildApp>;
let url: string;
let local: string;

const common = {
  model: demo.model,
  benchmark: 'demo:probe',
  selection: { limit: 4 },
  maxTokens: 300,
  answerMaxTokens: 16,
  seed: 5,
  threads: 1,
} satisfies Partial<BuildDatasetStepOptions>;

async function serve(h: ModelHost): Promise<{ app: ReturnType<typeof buildApp>; url: string }> {
  const a = buildApp(h);
  await a.listen({ host: '127.0.0.1', port: 0 });
  await h.load();
  return { app: a, url: `http://127.0.0.1:${(a.server.address() as AddressInfo).port}` };
}

/** Same rows and labels; every feature row within 1e-3 of its largest value (hidden states reach ~10^3 here). */
function expectSameDataset(a: Dataset, b: Dataset): void {
  expect(b.meta).toEqual(a.meta);
  expect(b.rows).toBe(a.rows);
  expect(maxRelativeFeatureDiff(a, b)).toBeLessThan(1e-3);
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'lynx-remote-build-'));
  host = new ModelHost({ model: demo.model, servedName: 'lynx-demo', parallel: 4, queue: 64, contextPerRequest: 1024, threads: 1 });
  ({ app, url } = await serve(host));
  local = join(tmp, 'local');
  await buildDatasetStep({ ...common, outDir: local });
});

afterAll(async () => {
  await app?.close();
  host?.dispose();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('build-dataset --backend openai', () => {
  it('equals the local build: the same events, answers and labels, features within float tolerance', async () => {
    const out = join(tmp, 'remote');
    const { summary } = await buildDatasetStep({ ...common, outDir: out, backend: 'openai', baseUrl: `${url}/v1`, maxInflight: 4 });
    const ref = readDataset(local);
    expect(ref.rows).toBeGreaterThan(4); // real cue events, not only synthetic ones
    expect(summary.rows).toBe(ref.rows);
    expectSameDataset(ref, readDataset(out));
    // The manifest says where it was generated; a local resume of it is refused as other settings.
    expect(readManifest(out).info.generator).toEqual({ backend: 'openai', server: 'lynx', model: 'lynx-demo' });
    expect(readManifest(local).info.generator).toBeUndefined();
  });

  it('reads a synthetic event (a rollout without cues) by truncating and prefilling again, as the local build', async () => {
    const o = { ...common, selection: { limit: 2 }, cues: ['zebra'] };
    await buildDatasetStep({ ...o, outDir: join(tmp, 'syn-local') });
    await buildDatasetStep({ ...o, outDir: join(tmp, 'syn-remote'), backend: 'openai', baseUrl: url });
    const ref = readDataset(join(tmp, 'syn-local'));
    expect(ref.meta.every((m) => m.synthetic)).toBe(true);
    expectSameDataset(ref, readDataset(join(tmp, 'syn-remote')));
  });

  it('gives the same dataset through a server that fails a fifth of its requests or stalls', async () => {
    const proxy = await startFaultProxy(url, { failRate: 0.2, stallMs: 3000, seed: 3 });
    const retries: string[] = [];
    try {
      const out = join(tmp, 'faulty');
      let last: { remote?: { retries: number } } = {};
      const o = { ...common, selection: { limit: 6 } };
      await buildDatasetStep({ ...o, outDir: join(tmp, 'local6') });
      await buildDatasetStep({
        ...o,
        outDir: out,
        backend: 'openai',
        baseUrl: proxy.url,
        maxInflight: 4,
        requestTimeout: 2,
        onRetry: (reason) => retries.push(reason),
        onProgress: (p) => (last = p),
      });
      expectSameDataset(readDataset(join(tmp, 'local6')), readDataset(out));
      // Every kind of fault happened, and each was retried.
      expect(Object.values(proxy.faults).every((n) => n > 0), JSON.stringify({ faults: proxy.faults, retries })).toBe(true);
      expect(retries.some((r) => /answered 503/.test(r))).toBe(true);
      expect(retries.some((r) => /answered 429/.test(r))).toBe(true);
      expect(retries.some((r) => /no data .* for 2 s/.test(r))).toBe(true);
      expect(retries.some((r) => /broke|ended before/.test(r)), retries.join('\n')).toBe(true);
      expect(last.remote!.retries).toBe(retries.length);
    } finally {
      await proxy.close();
    }
  });

  it('resumes an interrupted build to the same bytes as an uninterrupted one', async () => {
    const whole = join(tmp, 'whole');
    const o = { ...common, backend: 'openai' as const, baseUrl: url, maxInflight: 2, chunkUnits: 1 };
    await buildDatasetStep({ ...o, outDir: whole });
    const out = join(tmp, 'resumed');
    const controller = new AbortController();
    await expect(
      buildDatasetStep({ ...o, outDir: out, signal: controller.signal, onProgress: (p) => p.done >= 1 && controller.abort(new Error('interrupted')) }),
    ).rejects.toThrow('interrupted');
    const partial = readManifest(out);
    expect(partial.complete).toBe(false);
    expect(partial.units.length).toBeGreaterThan(0);
    expect(partial.units.length).toBeLessThan(4);
    const { result } = await buildDatasetStep({ ...o, outDir: out });
    expect(result.skipped).toBe(partial.units.length);
    const a = readDataset(whole);
    const b = readDataset(out);
    expect(b.meta).toEqual(a.meta);
    expect(Buffer.from(b.features.buffer)).toEqual(Buffer.from(a.features.buffer));
  });

  it('refuses a server whose model tokenizes differently, before any work', async () => {
    const other = new ModelHost({ model: buildTinyGguf(join(tmp, 'tiny.gguf'), { arch: 'qwen2', type: 'f32' }), servedName: 'tiny', parallel: 1, queue: 4, contextPerRequest: 1024, threads: 1 });
    const s = await serve(other);
    try {
      await expect(buildDatasetStep({ ...common, outDir: join(tmp, 'never'), backend: 'openai', baseUrl: s.url })).rejects.toThrow(VocabularyMismatchError);
      // The command says what is wrong and what to do, and exits with the user-error code.
      const err: string[] = [];
      const spy = vi.spyOn(process.stderr, 'write').mockImplementation((x: string | Uint8Array) => (err.push(String(x)), true));
      let code: number;
      try {
        code = await main(['build-dataset', '-m', demo.model, '-b', 'demo:probe', '--limit', '1', '-o', join(tmp, 'never2'), '--backend', 'openai', '--base-url', `${s.url}/v1`]);
      } finally {
        spy.mockRestore();
      }
      expect(code).toBe(1); // a data error (the server's model), not a usage error
      expect(err.join('')).toMatch(/the model at http:\/\/127\.0\.0\.1:\d+ \(tiny\) tokenizes differently from model\.gguf: .*first different at token \d+.*give -m the GGUF of the model the server runs/s);
    } finally {
      await s.app.close();
      other.dispose();
    }
  });
});
