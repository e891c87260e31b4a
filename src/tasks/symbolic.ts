/**
 * Symbolic equivalence of two LaTeX answers through @cortex-js/compute-engine, with a hard time limit.
 *
 * The check parses both sides, accepts structurally identical expressions, compares constant expressions
 * numerically (real and imaginary parts) with the caller's tolerance, and compares expressions with free
 * variables by evaluating both at seeded random points (same variables required). Computer algebra can take
 * unbounded time on adversarial input, so the asynchronous checker runs in a worker thread that is terminated
 * when a check exceeds its time limit (the check then counts as "not equivalent", with `timedOut` set).
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ComputeEngine } from '@cortex-js/compute-engine';

export interface Tolerance {
  /** absolute tolerance */
  abs: number;
  /** relative tolerance (of the larger magnitude) */
  rel: number;
}

export interface SymbolicRequest {
  a: string;
  b: string;
  /** tolerance for constant expressions (numbers written symbolically, e.g. \sqrt{2} against 1.4142) */
  tol: Tolerance;
}

/** true / false, or null when either side does not parse as mathematics */
export type SymbolicVerdict = boolean | null;

/**
 * The check itself. It must stay self-contained (no references outside its body besides its parameters):
 * its source text is also what runs inside the worker thread.
 */
export function symbolicCheck(ce: unknown, a: string, b: string, tol: Tolerance, seed: number): SymbolicVerdict {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const engine = ce as any;
  const A = engine.parse(a);
  const B = engine.parse(b);
  if (!A.isValid || !B.isValid) return null;
  if (A.isSame(B)) return true;
  const varsOf = (e: { unknowns?: readonly string[] }): string[] => [...(e.unknowns ?? [])].sort();
  const va = varsOf(A);
  const vb = varsOf(B);
  // Sets, intervals and other non-numeric symbols are decided by structure only.
  const nonNumeric = (v: string) => /^(EmptySet|RealNumbers|ComplexNumbers|Integers|Nothing)$/.test(v);
  if (va.some(nonNumeric) || vb.some(nonNumeric)) return false;
  if (va.join(',') !== vb.join(',')) return false;
  const value = (e: { N: () => { re: number; im: number } }): [number, number] | null => {
    const n = e.N();
    const re = n.re;
    const im = typeof n.im === 'number' && !Number.isNaN(n.im) ? n.im : 0;
    if (typeof re !== 'number' || Number.isNaN(re)) return null;
    return [re, im];
  };
  const close = (x: number, y: number, t: Tolerance): boolean => {
    if (x === y) return true; // also equal infinities
    if (!Number.isFinite(x) || !Number.isFinite(y)) return false;
    // y is the gold side: the absolute tolerance never exceeds 0.1% of its magnitude
    const limit = Math.max(Math.min(t.abs, 1e-3 * Math.abs(y)), t.rel * Math.max(Math.abs(x), Math.abs(y)));
    return Math.abs(x - y) <= limit * (1 + 1e-9);
  };
  if (va.length === 0) {
    const x = value(A);
    const y = value(B);
    if (!x || !y) return A.isEqual(B) === true;
    return close(x[0], y[0], tol) && close(x[1], y[1], tol);
  }
  // Expressions in variables: identical values at random points. Positive points keep roots and logarithms
  // real; a tight tolerance because both sides are exact expressions evaluated in floating point.
  const probeTol: Tolerance = { abs: 1e-9, rel: 1e-8 };
  let state = seed >>> 0 || 1;
  const rnd = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
  let agree = 0;
  for (let t = 0; t < 16 && agree < 5; t++) {
    const subs: Record<string, unknown> = {};
    for (const v of va) subs[v] = engine.number(0.37 + 2.3 * rnd());
    const x = value(A.subs(subs));
    const y = value(B.subs(subs));
    if (!x || !y || !Number.isFinite(x[0]) || !Number.isFinite(y[0])) continue;
    if (!close(x[0], y[0], probeTol) || !close(x[1], y[1], probeTol)) return false;
    agree++;
  }
  return agree >= 3;
}

let inlineEngine: ComputeEngine | undefined;

/** Synchronous check in this thread (no hard time limit; use the asynchronous checker for untrusted input). */
export function symbolicEqualInline(req: SymbolicRequest, seed = 12345): SymbolicVerdict {
  inlineEngine ??= new ComputeEngine();
  try {
    return symbolicCheck(inlineEngine, req.a, req.b, req.tol, seed);
  } catch {
    return null;
  }
}

export interface SymbolicResult {
  verdict: SymbolicVerdict;
  timedOut: boolean;
}

interface Pending {
  id: number;
  req: SymbolicRequest & { delayMs?: number };
  resolve: (r: SymbolicResult) => void;
}

/**
 * URL of the engine's ES module build. The package's CommonJS build exports nothing usable, and an eval'd worker
 * cannot resolve bare package names, so the path is worked out here from the package's own export map.
 */
function engineModuleUrl(): string {
  const cjs = createRequire(import.meta.url).resolve('@cortex-js/compute-engine');
  let dir = dirname(cjs);
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
    exports?: { '.'?: { import?: string } };
    module?: string;
  };
  const rel = pkg.exports?.['.']?.import ?? pkg.module;
  return pathToFileURL(rel ? join(dir, rel) : cjs).href;
}

function workerSource(): string {
  // A shim for the helper some TypeScript transforms insert to keep function names.
  return `
const { parentPort, workerData } = require('node:worker_threads');
var __name = (f) => f;
const check = (${symbolicCheck.toString()});
import(workerData.engineUrl).then(({ ComputeEngine }) => {
  const ce = new ComputeEngine();
  parentPort.on('message', (m) => {
    if (m.delayMs) { const until = Date.now() + m.delayMs; while (Date.now() < until) {} }
    let verdict = null;
    try { verdict = check(ce, m.a, m.b, m.tol, m.seed); } catch (e) { verdict = null; }
    parentPort.postMessage({ id: m.id, verdict });
  });
  parentPort.postMessage({ ready: true });
});
`;
}

/**
 * A worker thread that answers symbolic checks one at a time; a check that runs past `timeoutMs` terminates the
 * worker (a fresh one starts for the next check). The worker does not keep the process alive.
 */
export class SymbolicChecker {
  private worker: Worker | undefined;
  private ready: Promise<void> | undefined;
  private queue: Pending[] = [];
  private busy = false;
  private nextId = 1;
  private current: { id: number; resolve: (r: SymbolicResult) => void; timer?: NodeJS.Timeout } | undefined;
  timeouts = 0;
  /** why the worker could not start, when checks fell back to this thread */
  startError: Error | undefined;

  constructor(
    readonly timeoutMs = 3000,
    readonly seed = 12345,
  ) {}

  check(req: SymbolicRequest & { delayMs?: number }): Promise<SymbolicResult> {
    return new Promise((resolve) => {
      this.queue.push({ id: this.nextId++, req, resolve });
      void this.pump();
    });
  }

  private start(): Promise<void> {
    const w = new Worker(workerSource(), { eval: true, workerData: { engineUrl: engineModuleUrl() } });
    w.unref();
    this.worker = w;
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (m: { ready?: boolean; id?: number; verdict?: SymbolicVerdict }) => {
        if (m.ready) return resolve();
        const cur = this.current;
        if (cur && m.id === cur.id) {
          clearTimeout(cur.timer);
          this.current = undefined;
          cur.resolve({ verdict: m.verdict ?? null, timedOut: false });
        }
      };
      w.on('message', onMessage);
      w.on('error', (e) => {
        reject(e);
        this.fail();
      });
      w.on('exit', () => {
        if (this.worker === w) this.worker = undefined;
        this.fail();
      });
    });
    return this.ready;
  }

  /** The worker died: the check in flight gets no verdict. */
  private fail(): void {
    const cur = this.current;
    if (cur) {
      clearTimeout(cur.timer);
      this.current = undefined;
      cur.resolve({ verdict: null, timedOut: false });
    }
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.queue.length > 0) {
        const job = this.queue.shift()!;
        try {
          if (!this.worker) await this.start();
          else await this.ready;
        } catch (e) {
          // No worker thread (a restricted environment): check in this thread rather than not at all.
          this.startError = e as Error;
          this.worker = undefined;
          job.resolve({ verdict: symbolicEqualInline(job.req, this.seed), timedOut: false });
          continue;
        }
        const w = this.worker!;
        const result = await new Promise<SymbolicResult>((resolve) => {
          const timer = setTimeout(() => {
            if (this.current?.id !== job.id) return;
            this.current = undefined;
            this.timeouts++;
            this.worker = undefined;
            void w.terminate();
            resolve({ verdict: false, timedOut: true });
          }, this.timeoutMs);
          timer.unref();
          this.current = { id: job.id, resolve, timer };
          w.postMessage({ id: job.id, a: job.req.a, b: job.req.b, tol: job.req.tol, seed: this.seed, delayMs: job.req.delayMs });
        });
        job.resolve(result);
      }
    } finally {
      this.busy = false;
    }
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}

let shared: SymbolicChecker | undefined;

/** The process-wide checker (lazily started, unref'd). */
export function sharedSymbolicChecker(): SymbolicChecker {
  shared ??= new SymbolicChecker();
  return shared;
}
