/**
 * At most N requests open on the server at once (`--max-inflight N`), with one exception that keeps it from
 * deadlocking: a request of a sequence family (a sequence and its forks) that already has a request open never waits
 * for a slot. Methods probe while their trace is still streaming (DEER's trial answers, Dynasor's probes, a forced exit
 * at a cue): the trace holds a slot and waits for the probe, so a probe queued behind other traces, each waiting for
 * its own probe, would wait forever. Such requests still count, so new families wait while the total is at N.
 */

/** Requests of one sequence and its forks (a rollout, a problem) open now. */
export class RequestFamily {
  open = 0;
}

interface Waiter {
  family: RequestFamily;
  resolve: () => void;
  reject: (e: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class InflightLimit {
  #active = 0;
  readonly #waiters: Waiter[] = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`max in-flight requests must be a positive integer (got ${max})`);
  }

  /** Requests open now. */
  get active(): number {
    return this.#active;
  }

  /** Requests waiting for a slot. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Wait for a slot (none for a family with a request open) and take it; `leave` gives it back. */
  async enter(family: RequestFamily, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    if (this.#active < this.max || family.open > 0) return this.#take(family);
    await new Promise<void>((resolve, reject) => {
      const w: Waiter = { family, resolve, reject, signal };
      if (signal) {
        w.onAbort = () => {
          const i = this.#waiters.indexOf(w);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.#waiters.push(w);
    });
  }

  leave(family: RequestFamily): void {
    this.#active--;
    family.open--;
    this.#wake();
  }

  #take(family: RequestFamily): void {
    this.#active++;
    family.open++;
  }

  #wake(): void {
    // First come, first served; a waiter whose family has opened a request meanwhile goes at once.
    for (let i = 0; i < this.#waiters.length; ) {
      const w = this.#waiters[i]!;
      if (this.#active < this.max || w.family.open > 0) {
        this.#waiters.splice(i, 1);
        if (w.onAbort) w.signal!.removeEventListener('abort', w.onAbort);
        this.#take(w.family);
        w.resolve();
      } else {
        i++;
      }
    }
  }
}
