/**
 * `npm run bench -- --suite serve`: `lynx serve` under 1, 16 and 64 concurrent streams for 60 s each, on the demo model
 * and on the R1-1.5B-shape bench model, against llama.cpp's `llama-server` in the same run (see bench/serve.ts).
 *
 *   npm run bench -- --suite serve [--seconds 60] [--levels 1,16,64] [--models demo,r1] [--max-tokens 128]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { shippedDemo } from '../src/demo/shipped.js';
import { cacheDir } from '../src/util/paths.js';
import { writeBenchModel } from './engine.js';
import { freePort, loadServer, peerServerBinary, startServer, type LoadLevel } from './serve.js';
import { existsSync } from 'node:fs';

export async function benchServe(args: string[], log: (s: string) => void): Promise<Record<string, unknown>> {
  const opt = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
  const seconds = Number(opt('--seconds', '60'));
  const levels = opt('--levels', '1,16,64').split(',').map(Number);
  const models = opt('--models', 'demo,r1').split(',');
  const maxTokens = Number(opt('--max-tokens', '128'));
  const threads = opt('--threads', '2');
  const slots = Math.max(...levels);
  const ctx = 1024;
  const peer = peerServerBinary(join(cacheDir(), 'peer'));
  if (!peer) log('llama-server not found (build it as docs/server.md says, or set LYNX_LLAMA_SERVER): peer skipped');
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
    const prompt = '<｜User｜>Tom has 13 beads. He buys 6 more. How many beads does Tom have now?\nPlease reason step by step, and put your final answer within \\boxed{}.<｜Assistant｜><think>\n';
    const row: Record<string, unknown> = { model: which, file: file.split('/').pop(), slots, ctxPerSlot: ctx, maxTokens, seconds };
    const runs: [string, () => Promise<{ name: string; url: string; process: import('node:child_process').ChildProcess; stop(): Promise<void> }>, Record<string, unknown>?][] = [
      [
        'lynx',
        async () => {
          const port = await freePort();
          return startServer('lynx', process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '-m', file, '--port', String(port), '--parallel', String(slots), '--queue', '1024', '--ctx', String(ctx), '--threads', threads], port);
        },
      ],
    ];
    if (peer) {
      runs.push([
        'llama-server',
        async () => {
          const port = await freePort();
          return startServer('llama-server', peer, ['-m', file, '--port', String(port), '-np', String(slots), '-c', String(slots * ctx), '-t', threads, '-tb', threads, '-ctk', 'f32', '-ctv', 'f32', '-fa', 'off', '--no-webui', '-lv', '0'], port);
        },
      ]);
    }
    for (const [name, start] of runs) {
      const server = await start();
      try {
        row[name] = await loadServer(server, { prompt, maxTokens, levels, seconds, log });
      } finally {
        await server.stop();
      }
    }
    if (which === 'demo') {
      // LYNX early exit under load (different work: the probe at every cue word, exits cut traces short).
      const port = await freePort();
      const server = await startServer('lynx+lynx', process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--port', String(port), '--parallel', String(slots), '--queue', '1024', '--ctx', String(ctx), '--threads', threads], port);
      try {
        row['lynx early exit'] = await loadServer(server, { prompt, maxTokens, levels, seconds, log, extra: { early_exit: { method: 'lynx', delta: 0.1 } } });
      } finally {
        await server.stop();
      }
    }
    results.push(row);
  }
  log('\n| model | streams | lynx tok/s | llama-server tok/s | lynx / peer | lynx TTFT p50 / p99 ms | peer TTFT p50 / p99 ms | TTFT ratio (p50) | lynx ITL p50 / p99 ms | peer ITL p50 / p99 ms | errors | lynx RSS MiB start → end |');
  log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const ours = r.lynx as LoadLevel[];
    const theirs = r['llama-server'] as LoadLevel[] | undefined;
    ours.forEach((o, i) => {
      const p = theirs?.[i];
      const f = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d));
      log(
        `| ${r.model} | ${o.streams} | ${f(o.tokensPerSecond)} | ${f(p?.tokensPerSecond)} | ${p ? (o.tokensPerSecond / p.tokensPerSecond).toFixed(2) : '—'} | ` +
          `${f(o.ttftMs.p50, 0)} / ${f(o.ttftMs.p99, 0)} | ${f(p?.ttftMs.p50, 0)} / ${f(p?.ttftMs.p99, 0)} | ${p ? (o.ttftMs.p50 / p.ttftMs.p50).toFixed(2) : '—'} | ` +
          `${f(o.itlMs.p50)} / ${f(o.itlMs.p99)} | ${f(p?.itlMs.p50)} / ${f(p?.itlMs.p99)} | ${o.errors} / ${p?.errors ?? '—'} | ${f(o.rssMiB.start, 0)} → ${f(o.rssMiB.end, 0)} |`,
      );
    });
  }
  return { serve: results };
}
