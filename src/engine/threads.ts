/**
 * How many CPU threads a context runs llama.cpp with. llama.cpp's workers spin at a barrier between graph nodes, so
 * a worker that has no core of its own stalls all the others: on a 2-core machine 3 threads took 14.8 s for 20 tokens
 * where 2 took 0.3 s for 256, and 1,000 threads put the machine's load at 1,000. Counts are refused outside
 * 1..(2 x cores) and warned about above the core count.
 */
import { availableParallelism } from 'node:os';
import { LynxEngineUsageError } from './errors.js';

/** The cores this process may run on (its CPU affinity, as Node reports it). */
export function availableCores(): number {
  return availableParallelism();
}

/** The largest thread count accepted: twice the cores, room for an experiment, not for a typo. */
export function maxThreads(): number {
  return 2 * availableCores();
}

/**
 * The thread count to use: `requested`, else $LYNX_THREADS, else all available cores. Throws LynxEngineUsageError
 * outside 1..maxThreads(); warns once per count (process warning 'LynxWarning') above the core count.
 */
export function resolveThreads(requested?: number): number {
  const cores = availableCores();
  const max = 2 * cores;
  const range = `an integer from 1 to ${max} (2 x the ${cores} available cores)`;
  let n: number;
  if (requested !== undefined) {
    if (typeof requested !== 'number' || !Number.isInteger(requested) || requested < 1 || requested > max) {
      throw new LynxEngineUsageError(`threads must be ${range}, got ${String(requested)}`);
    }
    n = requested;
  } else {
    const env = process.env.LYNX_THREADS;
    if (env === undefined || env.trim() === '') return cores;
    n = Number(env);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new LynxEngineUsageError(`LYNX_THREADS must be ${range}, got '${env}'`);
  }
  if (n > cores && !warned.has(n)) {
    warned.add(n);
    process.emitWarning(
      `${n} threads on ${cores} available cores: llama.cpp's worker threads spin waiting for each other, so every ` +
        `decode slows down many times over (it can look like a hang); use at most ${cores}`,
      { type: 'LynxWarning', code: 'LYNX_THREADS_ABOVE_CORES' },
    );
  }
  return n;
}

const warned = new Set<number>();
