/**
 * Memory bandwidth of this machine, the physical limit of single-sequence decode (every weight byte is read once per
 * token). Measured with a small C read kernel (all cores, OpenMP) when a C compiler is present, else with Node
 * worker threads summing large buffers (a lower bound).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

const KERNEL = `
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <omp.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(void) {
  /* Integer sums: the compiler vectorises them (a floating-point sum is one dependent add per element without
     -ffast-math, which measures the adder's latency, not memory). */
  size_t n = (size_t)1 << 28; /* 2 GiB of 64-bit words */
  uint64_t *a = aligned_alloc(64, n * sizeof(uint64_t));
  #pragma omp parallel for
  for (size_t i = 0; i < n; i++) a[i] = i & 1023;
  double best = 0; uint64_t sink = 0;
  for (int rep = 0; rep < 5; rep++) {
    double t0 = now(); uint64_t s = 0;
    #pragma omp parallel for reduction(+:s)
    for (size_t i = 0; i < n; i++) s += a[i];
    double dt = now() - t0; sink += s;
    double gbs = n * sizeof(uint64_t) / dt / 1e9;
    if (gbs > best) best = gbs;
  }
  printf("%.3f %llu\\n", best, (unsigned long long)sink);
  return 0;
}`;

export interface Bandwidth {
  gbPerSecond: number;
  method: string;
}

/** `threads`: how many cores read (default all); one thread gives the bandwidth a single core can pull. */
export async function measureBandwidth(threads = availableParallelism()): Promise<Bandwidth> {
  const cc = ['cc', 'gcc', 'clang'].find((c) => spawnSync(c, ['--version']).status === 0);
  if (cc) {
    try {
      const dir = mkdtempSync(join(tmpdir(), 'lynx-bw-'));
      writeFileSync(join(dir, 'bw.c'), KERNEL);
      execFileSync(cc, ['-O3', '-march=native', '-fopenmp', join(dir, 'bw.c'), '-o', join(dir, 'bw')]);
      const out = execFileSync(join(dir, 'bw'), { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads) } });
      return { gbPerSecond: Number(out.split(' ')[0]), method: `C read kernel, ${threads} thread${threads === 1 ? '' : 's'} (OpenMP)` };
    } catch {
      // fall through to the JS measurement
    }
  }
  return { gbPerSecond: await jsBandwidth(threads), method: `Node worker threads, ${threads} threads (lower bound)` };
}

async function jsBandwidth(threads: number): Promise<number> {
  const bytesPerThread = 256 * 1024 * 1024;
  const src = `
    const { parentPort, workerData } = require('node:worker_threads');
    const a = new Float64Array(workerData / 8).fill(1);
    let best = Infinity;
    for (let r = 0; r < 4; r++) { const t = performance.now(); let s = 0; for (let i = 0; i < a.length; i += 4) s += a[i] + a[i+1] + a[i+2] + a[i+3]; best = Math.min(best, performance.now() - t); if (s < 0) console.log(s); }
    parentPort.postMessage(best);`;
  const times = await Promise.all(
    Array.from({ length: threads }, () => new Promise<number>((resolve, reject) => {
      const w = new Worker(src, { eval: true, workerData: bytesPerThread });
      w.once('message', resolve);
      w.once('error', reject);
    })),
  );
  const slowest = Math.max(...times) / 1000;
  return (threads * bytesPerThread) / slowest / 1e9;
}
