/**
 * Every method through `--backend openai` against `lynx serve` on the shipped demo reasoner, started by the test: the
 * full rollout, a token budget, LYNX online (hidden states of the remote trace read by local prefills, scored as it
 * streams), DEER's trial answers and Dynasor's probes (continuations of forks, sent while the trace still streams)
 * give the local engine's records for the same seed; DeepConf gets its top-20 log-probabilities from the server.
 * `lynx serve --backend openai` (a LYNX front end over a remote generator) answers a request as a local server does.
 */
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shippedDemo } from '../src/demo/shipped.js';
import { readPredictions, type PredictionRecord } from '../src/eval/records.js';
import { evaluateStep, type EvaluateStepOptions } from '../src/pipeline/evaluate.js';
import type { MethodSpec } from '../src/pipeline/methods.js';
import { buildApp } from '../src/server/app.js';
import { ModelHost } from '../src/server/host.js';
import { ZST_INSTRUCTION } from '../src/tasks/prompts.js';
import { loadBenchmark } from '../src/tasks/registry.js';

const demo = shippedDemo();
let tmp: string;
let host: ModelHost;
let app: ReturnType<typeof buildApp>;
let url: string;

const base = (spec: MethodSpec, out: string): EvaluateStepOptions => ({
  model: demo.model,
  benchmark: 'demo',
  selection: { limit: 2 },
  out,
  spec,
  maxTokens: 200,
  sampler: { temperature: 0.6, topP: 0.95 },
  seed: 2,
  grading: 'zst',
  exitCue: 'paper',
  concurrency: 2,
});

/** The records of each setting, in problem order, without wall times (and scores rounded: prefill vs decode). */
async function records(spec: MethodSpec, out: string, remote: boolean): Promise<Record<string, unknown>[][]> {
  const runs = await evaluateStep({ ...base(spec, out), ...(remote ? { backend: 'openai' as const, baseUrl: `${url}/v1` } : {}) });
  return runs.map((r) =>
    readPredictions(r.dir)
      .sort((a, b) => (a.index ?? 0) - (b.index ?? 0))
      .map((p: PredictionRecord) => ({
        id: p.id,
        setting: p.setting,
        tokens: p.tokens,
        extracted: p.extracted,
        correct: p.correct,
        exit: p.exit && { ...p.exit, score: p.exit.score === undefined ? undefined : Math.round(p.exit.score * 1e3) },
        events: p.events?.map((e) => ({ ...e, score: e.score === undefined ? undefined : Math.round(e.score * 1e3) })),
        text: p.text,
      })),
  );
}

beforeAll(async () => {
  // One thread per context: the local runs' contexts and the server's share two cores.
  process.env.LYNX_THREADS = '1';
  tmp = mkdtempSync(join(tmpdir(), 'lynx-remote-methods-'));
  host = new ModelHost({ model: demo.model, probe: demo.root, servedName: 'lynx-demo', parallel: 4, queue: 64, contextPerRequest: 1024, threads: 1 });
  app = buildApp(host);
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  await host.load();
});

afterAll(async () => {
  await app?.close();
  host?.dispose();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('eval --backend openai', () => {
  const specs: [string, MethodSpec][] = [
    ['the full rollout and a token budget', { method: 'budget', budgets: [40, 10_000] }],
    ['LYNX online, its cue events scored from locally read hidden states', { method: 'lynx', probe: demo.root, deltas: [0.3] }],
    ["DEER's trial answers", { method: 'deer' }],
    ["Dynasor-CoT's probes", { method: 'dynasor', interval: 32 }],
  ];
  for (const [what, spec] of specs) {
    it(`gives the local records for ${what}`, async () => {
      const local = await records(spec, join(tmp, `${spec.method}-local`), false);
      const remote = await records(spec, join(tmp, `${spec.method}-remote`), true);
      expect(remote).toEqual(local);
      expect(local.flat().length).toBeGreaterThanOrEqual(2);
    });
  }

  it('exits LYNX early remotely where it exits locally', async () => {
    const remote = await records({ method: 'lynx', probe: demo.root, deltas: [0.3] }, join(tmp, 'lynx-remote'), true);
    // The comparison above is worth something only if some trace did exit at a scored cue.
    expect(remote.flat().some((r) => r.exit !== null)).toBe(true);
  });

  it('runs DeepConf on the top-20 log-probabilities the server returns', async () => {
    const [run] = await evaluateStep({ ...base({ method: 'deepconf', traces: [4], warmup: 2 }, join(tmp, 'deepconf')), backend: 'openai', baseUrl: url });
    const preds = readPredictions(run!.dir);
    expect(preds).toHaveLength(2);
    for (const p of preds) {
      const traces = p.extra!.traces as { confidence: number; tokens: number }[];
      expect(traces).toHaveLength(4);
      // Token confidence is minus the mean top-20 log-probability: positive once the server sent them.
      for (const t of traces) expect(t.confidence).toBeGreaterThan(0);
    }
  });
});

describe('serve --backend openai', () => {
  it('answers as the server it generates on does: the same trace, exit and answer', async () => {
    const front = new ModelHost({
      model: demo.model,
      probe: demo.root,
      servedName: 'lynx-demo',
      parallel: 2,
      queue: 4,
      contextPerRequest: 1024,
      threads: 1,
      backend: { backend: 'openai', baseUrl: `${url}/v1` },
    });
    const f = buildApp(front);
    await f.listen({ host: '127.0.0.1', port: 0 });
    try {
      await front.load();
      expect(front.remote?.kind).toBe('lynx');
      const [p] = loadBenchmark('demo', { limit: 1 });
      const body = { messages: [{ role: 'user', content: `${p!.problem}\n${ZST_INSTRUCTION}` }], seed: 11, max_tokens: 200, early_exit: { method: 'lynx', delta: 0.3 } };
      const ask = async (at: string) => (await (await fetch(`${at}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as Record<string, any>;
      const here = await ask(url);
      const there = await ask(`http://127.0.0.1:${(f.server.address() as AddressInfo).port}`);
      expect(there.choices[0].message).toEqual(here.choices[0].message);
      expect(there.usage).toEqual(here.usage);
      expect({ ...there.early_exit, score: undefined }).toEqual({ ...here.early_exit, score: undefined });
      expect(there.early_exit.score).toBeCloseTo(here.early_exit.score, 3);
    } finally {
      await f.close();
      front.dispose();
    }
  });
});
