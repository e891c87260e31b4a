/**
 * Admission: at most `parallel` requests decode at once (they share one context, batched step by step); up to
 * `queue` more wait their turn in arrival order; beyond that a request is refused at once (429), so a burst never
 * grows memory without bound.
 */
import { ApiError } from './api-error.js';

export class Admission {
  private running = 0;
  private readonly waiting: { resolve: () => void; reject: (e: Error) => void; signal?: AbortSignal; onAbort?: () => void }[] = [];

  constructor(
    readonly parallel: number,
    readonly queue: number,
  ) {}

  get active(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Wait for a slot; the returned function gives it back. A request aborted while waiting leaves the queue. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.running < this.parallel) {
      this.running++;
      return this.releaser();
    }
    if (this.waiting.length >= this.queue) {
      throw new ApiError(429, `the server is busy: ${this.running} requests running and ${this.waiting.length} waiting; retry later`, 'rate_limit_error', null, 'queue_full');
    }
    await new Promise<void>((resolve, reject) => {
      const entry: (typeof this.waiting)[number] = { resolve, reject, signal };
      if (signal) {
        entry.onAbort = () => {
          const i = this.waiting.indexOf(entry);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.waiting.push(entry);
    });
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) {
        if (next.onAbort) next.signal?.removeEventListener('abort', next.onAbort);
        next.resolve(); // the slot passes straight to the next request
      } else {
        this.running--;
      }
    };
  }
}
