/**
 * `npm run bench -- --suite serve`: `lynx serve` under 1, 16 and 64 concurrent streams, on the demo model and on the
 * R1-1.5B-shape bench model, against llama.cpp's `llama-server` in the same run (see bench/serve.ts). The machine is
 * shared and its load drifts, so both servers stay up and take turns: each level runs in `--rounds` alternating
 * slices of `--seconds / --rounds` seconds per server, and the figures pool the slices.
 *
 *   npm run bench -- --suite serve [--seconds 60] [--rounds 3] [--levels 1,16,64] [--models demo,r1] [--max-tokens 128] [--threads 2]
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { shippedDemo } from '../src/demo/shipped.js';
import { cacheDir } from '../src/util/paths.js';
import { writeBenchModel } from './engine.js';
import { freePort, loadServer, peerServerBinary, pool, startServer, type LoadLevel, type ServerUnderLoad } from './serve.js';

const PROMPT =
  '<｜User｜>Tom has 13 beads. He buys 6 more. How many beads does Tom have now?\nPlease reason step by step, and put your final answer within \\boxed{}.<｜Assistant｜><think>\n';

export async function benchServe(args: string[], log: (s: string) => void): Promise<Record<string, unknown>> {
  const opt = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
  const seconds = Number(opt('--seconds', '60'));
  const rounds = Number(opt('--rounds', '3'));
  const levels = opt('--levels', '1,16,64').split(',').map(Number);
  const models = opt('--models', 'demo,r1').split(',');
  const maxTokens = Number(opt('--max-tokens', '128'));
  const threads = opt('--threads', '2');
  const slots = Math.max(...levels);
  const ctx = 1024;
  const peer = peerServerBinary(join(cacheDir(), 'peer'));
  if (!peer) log('llama-server not found (npm run bench:peer && npm run bench:peer-server, or set LYNX_LLAMA_SERVER): peer skipped');
  const results: Record<string, unknown>[] = [];
  for (const which of models) {
    let file: string;
    if (which === 'demo') file = shippedDemo().model;
    else {
      file = join(cacheDir(), 'bench', 'r1-distill-qwen-1.5b-shape.q8_0.gguf');
      if (!existsSync(file)) {
        mkdirSync(join(cacheDir(), 'bench'), { recursive: true });
        log(`writing ${file}`);
        writeBenchModel(file, 'q8_0');
      }
    }
    const lynxArgs = (port: number, extra: string[] = []) => ['--import', 'tsx', 'src/cli/main.ts', 'serve', '-m', file, '--port', String(port), '--parallel', String(slots), '--queue', '4096', '--ctx', String(ctx), '--threads', threads, ...extra];
    const servers: { key: string; start: () => Promise<ServerUnderLoad>; extra?: Record<string, unknown> }[] = [
      { key: 'lynx', start: async () => { const p = await freePort(); return startServer('lynx', process.execPath, lynxArgs(p), p); } },
    ];
    if (peer) {
      servers.push({
        key: 'llama-server',
        start: async () => {
          const p = await freePort();
          return startServer('llama-server', peer, ['-m', file, '--port', String(p), '-np', String(slots), '-c', String(slots * ctx), '-t', threads, '-tb', threads, '--no-webui'], p);
        },
      });
    }
    if (which === 'demo') {
      // LYNX early exit under load: the probe at every cue word, exits cut traces short (different work).
      servers.push({
        key: 'lynx early exit',
        start: async () => { const p = await freePort(); return startServer('lynx+early-exit', process.execPath, lynxArgs(p, ['--probe', shippedDemo().root]), p); },
        extra: { early_exit: { method: 'lynx', delta: 0.1 } },
      });
    }
    const up: ServerUnderLoad[] = [];
    try {
      for (const s of servers) up.push(await s.start());
      const row: Record<string, unknown> = { model: which, file: file.split('/').pop(), slots, ctxPerSlot: ctx, maxTokens, seconds, rounds, threads };
      for (const s of servers) row[s.key] = [] as LoadLevel[];
      for (const streams of levels) {
        const slices = new Map<string, LoadLevel[]>(servers.map((s) => [s.key, []]));
        for (let r = 0; r < rounds; r++) {
          for (const [i, s] of servers.entries()) {
            const [level] = await loadServer(up[i]!, { prompt: PROMPT, maxTokens, levels: [streams], seconds: seconds / rounds, extra: s.extra });
            slices.get(s.key)!.push(level!);
          }
        }
        for (const s of servers) {
          const pooled = pool(slices.get(s.key)!);
          (row[s.key] as LoadLevel[]).push(pooled);
          log(
            `${which} ${s.key} ${streams} streams: ${pooled.tokensPerSecond.toFixed(1)} tok/s, TTFT p50 ${pooled.ttftMs.p50.toFixed(0)} ms p99 ${pooled.ttftMs.p99.toFixed(0)}, ` +
              `ITL p50 ${pooled.itlMs.p50.toFixed(1)} ms p99 ${pooled.itlMs.p99.toFixed(1)}, ${pooled.requests} requests, ${pooled.errors} errors, RSS ${pooled.rssMiB.start.toFixed(0)} -> ${pooled.rssMiB.end.toFixed(0)} MiB`,
          );
        }
      }
      results.push(row);
    } finally {
      for (const s of up) await s.stop();
    }
  }
  const f = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d));
  log('\n| model | streams | lynx tok/s | llama-server tok/s | lynx / peer | lynx TTFT p50 / p99 ms | peer TTFT p50 / p99 ms | TTFT lynx / peer (p50) | lynx ITL p50 / p99 ms | peer ITL p50 / p99 ms | errors lynx / peer | lynx RSS MiB start → end |');
  log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const ours = r.lynx as LoadLevel[];
    const theirs = r['llama-server'] as LoadLevel[] | undefined;
    ours.forEach((o, i) => {
      const p = theirs?.[i];
      log(
        `| ${r.model} | ${o.streams} | ${f(o.tokensPerSecond)} | ${f(p?.tokensPerSecond)} | ${p ? (o.tokensPerSecond / p.tokensPerSecond).toFixed(2) : '—'} | ` +
          `${f(o.ttftMs.p50, 0)} / ${f(o.ttftMs.p99, 0)} | ${f(p?.ttftMs.p50, 0)} / ${f(p?.ttftMs.p99, 0)} | ${p ? (o.ttftMs.p50 / p.ttftMs.p50).toFixed(2) : '—'} | ` +
          `${f(o.itlMs.p50)} / ${f(o.itlMs.p99)} | ${f(p?.itlMs.p50)} / ${f(p?.itlMs.p99)} | ${o.errors} / ${p?.errors ?? '—'} | ${f(o.rssMiB.start, 0)} → ${f(o.rssMiB.end, 0)} |`,
      );
    });
    const ee = r['lynx early exit'] as LoadLevel[] | undefined;
    if (ee) log(`\nLYNX early exit (δ 0.1) on ${r.model}: ` + ee.map((l) => `${l.streams} streams ${f(l.tokensPerSecond)} tok/s, TTFT p50 ${f(l.ttftMs.p50, 0)} ms, ${l.errors} errors`).join('; '));
  }
  return { serve: results };
}
