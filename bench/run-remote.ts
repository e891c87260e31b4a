/**
 * `npm run bench -- --suite remote`: a LYNX dataset build generated on a server (`--backend openai`) at 1, 8 and 32
 * requests in flight, against the local build of the same problems, seed and options. The servers are `lynx serve`
 * and, where bench/build-peer-server.sh has built it, llama.cpp's `llama-server` (started with an F32 KV cache and
 * no flash attention, as the local engine decodes). Each remote dataset is also compared with the local one: the same
 * events and labels (`same rows`), and the largest feature difference relative to its row.
 *
 *   npm run bench -- --suite remote [--problems 32] [--max-tokens 256] [--levels 1,8,32] [--threads 1]
 *
 * On a CPU-only machine the server and the client share the cores, so this measures the client's overhead (HTTP,
 * streaming, the local prefills that read hidden states) more than a GPU server's speed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { shippedDemo } from '../src/demo/shipped.js';
import { buildDatasetStep, type BuildDatasetStepOptions } from '../src/pipeline/build-dataset.js';
import { readDataset, type Dataset } from '../src/reasoning/lynx/dataset/store.js';
import { maxRelativeFeatureDiff } from '../src/reasoning/lynx/dataset/compare.js';
import { cacheDir } from '../src/util/paths.js';
import { freePort, peerServerBinary, startServer, type ServerUnderLoad } from './serve.js';

interface BuildRun {
  backend: string;
  inflight: number | null;
  seconds: number;
  rolloutsPerSecond: number;
  tokensPerSecond: number;
  requests?: number;
  retries?: number;
  divergences?: number;
  sameRows?: boolean;
  maxRelativeFeatureDiff?: number;
}

function compare(a: Dataset, b: Dataset): { sameRows: boolean; maxRelativeFeatureDiff: number } {
  const sameRows = JSON.stringify(a.meta) === JSON.stringify(b.meta);
  return { sameRows, maxRelativeFeatureDiff: sameRows ? maxRelativeFeatureDiff(a, b) : NaN };
}

export async function benchRemote(args: string[], log: (s: string) => void): Promise<Record<string, unknown>> {
  const opt = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
  const problems = Number(opt('--problems', '32'));
  const maxTokens = Number(opt('--max-tokens', '256'));
  const levels = opt('--levels', '1,8,32').split(',').map(Number);
  const threads = Number(opt('--threads', '1'));
  const slots = Math.max(...levels);
  const model = shippedDemo().model;
  const tmp = mkdtempSync(join(tmpdir(), 'lynx-bench-remote-'));
  const common: Omit<BuildDatasetStepOptions, 'outDir'> = { model, benchmark: 'demo:probe', selection: { limit: problems }, maxTokens, answerMaxTokens: 16, seed: 1, threads };
  const runs: BuildRun[] = [];
  try {
    const build = async (name: string, o: Partial<BuildDatasetStepOptions>): Promise<{ run: BuildRun; dir: string }> => {
      const dir = join(tmp, name);
      let last: { tokens: number; remote?: { requests: number; retries: number; divergences: number } } = { tokens: 0 };
      const t0 = performance.now();
      const { result } = await buildDatasetStep({ ...common, ...o, outDir: dir, onProgress: (p) => (last = p) });
      const seconds = (performance.now() - t0) / 1000;
      const run: BuildRun = {
        backend: name.replace(/-\d+$/, ''),
        inflight: o.maxInflight ?? null,
        seconds,
        rolloutsPerSecond: result.rollouts / seconds,
        tokensPerSecond: last.tokens / seconds,
        ...(last.remote ? { requests: last.remote.requests, retries: last.remote.retries, divergences: last.remote.divergences } : {}),
      };
      log(`${name}: ${seconds.toFixed(1)} s, ${run.rolloutsPerSecond.toFixed(2)} rollouts/s, ${run.tokensPerSecond.toFixed(0)} tok/s`);
      return { run, dir };
    };
    const local = await build('local', { concurrency: 4 });
    runs.push(local.run);
    const reference = readDataset(local.dir);
    const servers: [string, () => Promise<ServerUnderLoad>][] = [
      [
        'lynx serve',
        async () => {
          const port = await freePort();
          return startServer('lynx serve', process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '-m', model, '--port', String(port), '--parallel', String(slots), '--queue', '1024', '--ctx', '1024', '--threads', String(threads)], port);
        },
      ],
    ];
    const peer = peerServerBinary(join(cacheDir(), 'peer'));
    if (peer) {
      servers.push([
        'llama-server',
        async () => {
          const port = await freePort();
          return startServer('llama-server', peer, ['-m', model, '--port', String(port), '-np', String(slots), '-c', String(slots * 1024), '-t', String(threads), '-tb', String(threads), '-ctk', 'f32', '-ctv', 'f32', '-fa', 'off', '--no-webui', '-lv', '0'], port);
        },
      ]);
    } else {
      log('llama-server NOT RUN: not built (npm run bench:peer && npm run bench:peer-server, or set LYNX_LLAMA_SERVER)');
    }
    for (const [name, start] of servers) {
      const server = await start();
      try {
        for (const n of levels) {
          const { run, dir } = await build(`${name}-${n}`, { backend: 'openai', baseUrl: server.url, maxInflight: n });
          Object.assign(run, compare(reference, readDataset(dir)));
          runs.push(run);
        }
      } finally {
        await server.stop();
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const base = runs[0]!;
  log(`\n${problems} problems of demo:probe, --max-tokens ${maxTokens}, ${threads} thread(s) per side`);
  log('\n| generator | in flight | s | rollouts/s | tok/s | vs local | requests | retries | same rows as local | max feature diff (relative) |');
  log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of runs) {
    const f = (x: number | undefined, d: number) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d));
    log(
      `| ${r.backend} | ${r.inflight ?? '—'} | ${f(r.seconds, 1)} | ${f(r.rolloutsPerSecond, 2)} | ${f(r.tokensPerSecond, 0)} | ${(r.tokensPerSecond / base.tokensPerSecond).toFixed(2)}x | ` +
        `${r.requests ?? '—'} | ${r.retries ?? '—'} | ${r.sameRows === undefined ? '—' : r.sameRows ? 'yes' : 'no'} | ${r.maxRelativeFeatureDiff === undefined ? '—' : r.maxRelativeFeatureDiff.toExponential(1)} |`,
    );
  }
  return { remote: { problems, maxTokens, levels, threads, runs } };
}
