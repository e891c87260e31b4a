/**
 * `npm run bench`: runs the benchmarks and writes their figures to bench/results/<date>-<host kind>.json.
 * Speed is measured here, never in tests. Copy the printed table into BENCHMARKS.md with the date and machine.
 *
 *   npm run bench                 # engine benchmark, Q8_0 and BF16
 *   npm run bench -- --only q8_0  # one type
 *   npm run bench -- --suite serve  # lynx serve under load against llama-server (bench/run-serve.ts)
 *   npm run bench -- --suite samplers  # host cost per token of each sampler (bench/samplers.ts)
 *   npm run bench -- --suite remote # a dataset build generated on a server at 1/8/32 in flight vs local (bench/run-remote.ts)
 *   npm run bench -- --suite heads --threads 1  # early-exit heads: self-speculative vs plain decoding (bench/heads.ts)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { benchEngine } from './engine.js';
import { cacheDir } from '../src/util/paths.js';

const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const types = (only ? [only] : ['q8_0', 'bf16']) as ('q8_0' | 'bf16')[];

const machine = `${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
const started = new Date();
console.log(`lynx bench — ${started.toISOString()} — ${machine}`);
const suite = args.includes('--suite') ? args[args.indexOf('--suite') + 1] : 'engine';
if (suite === 'remote') {
  const { benchRemote } = await import('./run-remote.js');
  const result = await benchRemote(args, (s) => console.log(s));
  const outDir = resolve('bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const out = join(outDir, `${started.toISOString().slice(0, 10)}-remote.json`);
  writeFileSync(out, JSON.stringify({ date: started.toISOString(), machine, ...result }, null, 2) + '\n');
  console.log(`\nwrote ${out}`);
  process.exit(0);
}
if (suite === 'serve' || suite === 'samplers' || suite === 'heads') {
  const result =
    suite === 'serve'
      ? await (await import('./run-serve.js')).benchServe(args, (s) => console.log(s))
      : suite === 'heads'
        ? await (await import('./heads.js')).benchHeads(args, (s) => console.log(s))
        : await (await import('./samplers.js')).benchSamplers((s) => console.log(s));
  const outDir = resolve('bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const out = join(outDir, `${started.toISOString().slice(0, 10)}-${suite}.json`);
  writeFileSync(out, JSON.stringify({ date: started.toISOString(), machine, ...result }, null, 2) + '\n');
  console.log(`\nwrote ${out}`);
  process.exit(0);
}
const engine = await benchEngine(join(cacheDir(), 'bench'), types, (s) => console.log(s));

console.log('\n| file | prefill tok/s | decode tok/s | decode, 3 taps | tap overhead | roofline tok/s | % of roofline | node-llama-cpp tok/s | ours / peer | 1 seq | 4 seq | 16 seq | 16 / 1 |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of engine) {
  const agg = (n: number) => r.aggregate.find((a) => a.sequences === n)!.tokensPerSecond;
  console.log(
    `| ${r.type} | ${r.prefillTokensPerSecond.toFixed(1)} | ${r.decodeTokensPerSecond.toFixed(2)} | ${r.decodeTappedTokensPerSecond.toFixed(2)} | ` +
      `${(r.tapOverhead * 100).toFixed(1)}% | ${r.rooflineTokensPerSecond!.toFixed(2)} | ${(r.rooflineFraction! * 100).toFixed(0)}% | ` +
      `${r.peer?.decodeTokensPerSecond.toFixed(2)} | ${(r.decodeTokensPerSecond / (r.peer?.decodeTokensPerSecond ?? NaN)).toFixed(2)} | ` +
      `${agg(1).toFixed(1)} | ${agg(4).toFixed(1)} | ${agg(16).toFixed(1)} | ${(agg(16) / agg(1)).toFixed(2)}x |`,
  );
}
console.log('\n| file | 16 seq, T 0.6 / top-p 0.95, serial draws | parallel draws | parallel / serial | decode, 1 thread | all threads / 1 | one-core bandwidth | 1-thread % of one-core roofline |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of engine) {
  const s = r.sampling16!;
  console.log(
    `| ${r.type} | ${s.serialTokensPerSecond.toFixed(1)} | ${s.parallelTokensPerSecond.toFixed(1)} | ${(s.parallelTokensPerSecond / s.serialTokensPerSecond).toFixed(2)}x | ` +
      `${r.decodeOneThreadTokensPerSecond!.toFixed(2)} | ${(r.decodeTokensPerSecond / r.decodeOneThreadTokensPerSecond!).toFixed(2)}x | ` +
      `${r.oneCoreBandwidthGbPerSecond!.toFixed(1)} GB/s | ${(r.oneThreadRooflineFraction! * 100).toFixed(0)}% |`,
  );
}
const outDir = resolve('bench', 'results');
mkdirSync(outDir, { recursive: true });
const out = join(outDir, `${started.toISOString().slice(0, 10)}-engine-${types.join('-')}.json`);
// File names only: the cache path is this machine's.
writeFileSync(out, JSON.stringify({ date: started.toISOString(), machine, engine: engine.map((r) => ({ ...r, file: basename(r.file) })) }, null, 2) + '\n');
console.log(`\nwrote ${out}`);
