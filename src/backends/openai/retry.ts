/**
 * When a failed request is worth sending again, and how long to wait first: overload and server faults (429, 5xx),
 * timeouts and broken connections are retried with exponential backoff and jitter; a request the server refused for
 * what it is (400, 401, 404, ...) is not.
 */
import { Rng } from '../../util/rng.js';

export interface RetryPolicy {
  /** Tries after the first, per request (a stream that made progress before it broke starts counting again). */
  retries: number;
  /** Wait before the first retry; doubled each time. */
  baseDelayMs: number;
  /** Longest wait between tries (a server's Retry-After is honoured up to this). */
  maxDelayMs: number;
  /** A request (or a stream) that sends nothing for this long is abandoned and retried. */
  idleTimeoutMs: number;
}

export const DEFAULT_RETRY: Readonly<RetryPolicy> = Object.freeze({ retries: 8, baseDelayMs: 500, maxDelayMs: 30_000, idleTimeoutMs: 600_000 });

/** Statuses that say "not now": rate limits, overload, gateway and server faults. */
const RETRYABLE_STATUS = new Set([408, 409, 425, 429, 500, 502, 503, 504]);

export function isRetryableStatus(status: number): boolean {
  return RETRYABLE_STATUS.has(status) || (status >= 520 && status <= 599);
}

/** A failure that another try may not have: the caller backs off and sends the request again. */
export class TransientFailure extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Retry-After as milliseconds (seconds or an HTTP date), if the header says something usable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const s = Number(header);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const t = Date.parse(header);
  return Number.isFinite(t) ? Math.max(0, t - now) : undefined;
}

/**
 * The wait before retry `attempt` (1 = first retry): base x 2^(attempt-1), capped, with "equal jitter" (half fixed,
 * half random) so that many clients failing together do not come back together. A Retry-After wins when longer.
 */
export function backoffMs(policy: RetryPolicy, attempt: number, rng: Rng, retryAfter?: number): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  const jittered = exp / 2 + rng.next() * (exp / 2);
  return Math.min(policy.maxDelayMs, Math.max(jittered, retryAfter ?? 0));
}

/** Resolve after `ms`, or reject with the signal's reason once it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
