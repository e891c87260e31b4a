/**
 * A connection to one OpenAI-compatible server: which server it is and which model it serves, how long a sequence may
 * be there, authenticated JSON requests with retries, the in-flight limit, and counters for progress bars and
 * benchmarks. `RemoteServer.connect` checks, before any work, that the server answers, serves the model asked for and
 * tokenizes as the local model does.
 */
import type { Vocabulary } from '../generator.js';
import { Rng } from '../../util/rng.js';
import { dialectOf, serverKindOf, type Dialect, type ServerKind } from './dialect.js';
import { RemoteServerError } from './errors.js';
import { InflightLimit } from './inflight.js';
import { backoffMs, DEFAULT_RETRY, isRetryableStatus, retryAfterMs, sleep, TransientFailure, type RetryPolicy } from './retry.js';
import { checkVocabulary } from './vocab-check.js';

export interface RemoteOptions {
  /** The server's address: its root or its `/v1` (both work), e.g. `http://gpu-node:8000/v1`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer KEY`. */
  apiKey?: string;
  /** The served model name; default the server's only model. */
  model?: string;
  /** Requests open on the server at once (probes of an open trace may exceed it; see inflight.ts). Default 8. */
  maxInflight?: number;
  retry?: Partial<RetryPolicy>;
  /** Top log-probabilities per token the server hands out (vLLM's --max-logprobs). Default 20. */
  maxTopLogprobs?: number;
  /** Told of every retry: what failed, the try number and the wait before the next. */
  onRetry?: (reason: string, attempt: number, delayMs: number) => void;
}

/** Counters of the requests made, for progress lines and benchmarks. */
export interface RemoteStats {
  requests: number;
  /** Requests sent again after a transient failure (429, 5xx, timeout, broken stream). */
  retries: number;
  /** Streams replayed whose server sampled other tokens the second time (continued from what was kept instead). */
  divergences: number;
  /** Generated tokens received. */
  tokens: number;
}

/** lynx serve keeps this many cells of a request for an exit cue and answer (server/app.ts EXIT_ROOM). */
const LYNX_EXIT_ROOM = 128;

export class RemoteServer {
  readonly stats: RemoteStats = { requests: 0, retries: 0, divergences: 0, tokens: 0 };
  readonly limit: InflightLimit;
  readonly retry: RetryPolicy;
  readonly dialect: Dialect;
  readonly maxTopLogprobs: number;
  readonly onRetry: RemoteOptions['onRetry'];
  /** Jitter of the backoff (seeded per process, so that processes retrying together spread out). */
  readonly rng = new Rng(process.pid);
  #pieces: Map<string, number> | undefined;

  private constructor(
    /** Server root (no trailing `/v1`). */
    readonly root: string,
    readonly kind: ServerKind,
    readonly model: string,
    /** Tokens one sequence (prompt + generation) may hold there; undefined when the server does not say. */
    readonly maxModelLen: number | undefined,
    private readonly apiKey: string | undefined,
    o: RemoteOptions,
    private readonly vocab: Vocabulary,
  ) {
    this.limit = new InflightLimit(o.maxInflight ?? 8);
    this.retry = { ...DEFAULT_RETRY, ...o.retry };
    this.dialect = dialectOf(kind);
    this.maxTopLogprobs = o.maxTopLogprobs ?? 20;
    this.onRetry = o.onRetry;
  }

  /** Count a retry, tell `onRetry`, and wait before it. */
  async backoff(reason: TransientFailure, attempt: number, signal?: AbortSignal): Promise<void> {
    this.stats.retries++;
    const ms = backoffMs(this.retry, attempt, this.rng, reason.retryAfterMs);
    this.onRetry?.(reason.message, attempt, ms);
    await sleep(ms, signal);
  }

  /**
   * Find the server and its model, and check that its tokenizer agrees with `vocab` (a VocabularyMismatchError
   * otherwise). `checkVocab: false` skips the check (a server without a tokenizer endpoint).
   */
  static async connect(o: RemoteOptions & { vocab: Vocabulary; checkVocab?: boolean }): Promise<RemoteServer> {
    const root = rootOf(o.baseUrl);
    const probe = new RemoteServer(root, 'openai', o.model ?? '', undefined, o.apiKey, { ...o, retry: { retries: 2, ...o.retry } }, o.vocab);
    const list = (await probe.json('GET', '/v1/models')) as { data?: Record<string, unknown>[] };
    const models = Array.isArray(list?.data) ? list.data : [];
    if (models.length === 0) throw new RemoteServerError(`${root}/v1/models lists no model: is this an OpenAI-compatible server?`);
    const names = models.map((m) => String(m.id));
    const chosen = o.model === undefined ? (models.length === 1 ? models[0] : undefined) : models.find((m) => m.id === o.model);
    if (!chosen) {
      throw new RemoteServerError(
        o.model === undefined
          ? `${root} serves ${names.length} models (${names.join(', ')}): name one with --remote-model`
          : `${root} does not serve '${o.model}'; it serves ${names.join(', ')}`,
      );
    }
    const kind = serverKindOf(chosen.owned_by);
    let maxModelLen = positive(chosen.max_model_len) ?? positive(object(chosen.meta)?.n_ctx_train);
    if (kind === 'llamacpp') {
      // A slot's context, which is what one request may use (often less than the model was trained for).
      const props = object(await probe.json('GET', '/props').catch(() => undefined));
      maxModelLen = positive(object(props?.default_generation_settings)?.n_ctx) ?? maxModelLen;
    }
    if (kind === 'lynx' && maxModelLen !== undefined) maxModelLen -= LYNX_EXIT_ROOM;
    const server = new RemoteServer(root, kind, String(chosen.id), maxModelLen, o.apiKey, o, o.vocab);
    if (o.checkVocab !== false) await checkVocabulary(server, o.vocab, positive(object(chosen.meta)?.n_vocab));
    return server;
  }

  /** What a dataset manifest or a run record says about the generator. */
  describe(): { backend: 'openai'; server: ServerKind; model: string } {
    return { backend: 'openai', server: this.kind, model: this.model };
  }

  get url(): string {
    return this.root;
  }

  /** Token texts to ids, for servers that name top log-probabilities by text (built on first use). */
  pieces = (): ReadonlyMap<string, number> => {
    if (!this.#pieces) {
      const decoder = new TextDecoder('utf-8');
      const map = new Map<string, number>();
      for (let id = this.vocab.info.nVocab - 1; id >= 0; id--) map.set(decoder.decode(this.vocab.tokenBytes(id)), id);
      this.#pieces = map;
    }
    return this.#pieces;
  };

  /**
   * One POST or GET, sent again on a transient failure. Returns the parsed JSON body. `retries` overrides the policy's
   * count (a probe for an optional endpoint tries once).
   */
  async json(method: 'GET' | 'POST', path: string, body?: unknown, o: { retries?: number; signal?: AbortSignal } = {}): Promise<unknown> {
    const retries = o.retries ?? this.retry.retries;
    for (let attempt = 0; ; attempt++) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(new TransientFailure(`no answer from ${this.root}${path} within ${this.retry.idleTimeoutMs / 1000} s`)), this.retry.idleTimeoutMs);
      const onAbort = () => controller.abort(o.signal!.reason);
      o.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const res = await this.fetch(method, path, body, controller.signal);
        const text = await res.text();
        try {
          return JSON.parse(text) as unknown;
        } catch {
          throw new RemoteServerError(`${this.root}${path} answered ${res.status} with a body that is not JSON: ${text.slice(0, 120)}`, res.status);
        }
      } catch (e) {
        const failure = controller.signal.reason instanceof TransientFailure && !o.signal?.aborted ? controller.signal.reason : e;
        if (!(failure instanceof TransientFailure) || attempt >= retries || o.signal?.aborted) {
          throw failure instanceof TransientFailure ? new RemoteServerError(`${failure.message} (after ${attempt + 1} tries)`, undefined, { cause: failure }) : failure;
        }
        await this.backoff(failure, attempt + 1, o.signal);
      } finally {
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', onAbort);
      }
    }
  }

  /**
   * Send one request; resolve with a response whose status is 2xx. A status worth retrying, a connection that fails
   * and an abort by `signal` with a TransientFailure reason reject with TransientFailure; any other status with a
   * RemoteServerError that says what the server said and what to check.
   */
  async fetch(method: 'GET' | 'POST', path: string, body: unknown, signal: AbortSignal): Promise<Response> {
    const url = `${this.root}${path}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new TransientFailure(`cannot reach ${url}: ${cause?.code ?? cause?.message ?? (e as Error).message}`, undefined, { cause: e });
    }
    if (res.ok) return res;
    const detail = await res.text().catch(() => '');
    const message = errorMessage(detail);
    if (isRetryableStatus(res.status)) throw new TransientFailure(`${url} answered ${res.status}${message ? `: ${message}` : ''}`, retryAfterMs(res.headers.get('retry-after')));
    const hint =
      res.status === 401 || res.status === 403
        ? ': the server wants an API key (--api-key, or $OPENAI_API_KEY)'
        : res.status === 404 && !message
          ? `: is ${this.root} an OpenAI-compatible server (vLLM, SGLang, llama-server, lynx serve)?`
          : '';
    throw new RemoteServerError(`${url} answered ${res.status}${message ? `: ${message}` : ''}${hint}`, res.status);
  }
}

/** `http://h:8000/v1/` and `http://h:8000` both to `http://h:8000`. */
export function rootOf(baseUrl: string): string {
  let u: URL;
  try {
    u = new URL(baseUrl);
  } catch {
    throw new RemoteServerError(`--base-url '${baseUrl}' is not a URL: give the server's address, e.g. http://127.0.0.1:8000/v1`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new RemoteServerError(`--base-url '${baseUrl}' must be an http:// or https:// address`);
  return u.toString().replace(/\/+$/, '').replace(/\/v1$/, '');
}

/** The message of an OpenAI-style error body, or the body itself (shortened). */
function errorMessage(body: string): string {
  try {
    const j = JSON.parse(body) as { error?: { message?: string } | string; message?: string; detail?: unknown };
    if (typeof j.error === 'string') return j.error;
    if (j.error?.message) return j.error.message;
    if (typeof j.message === 'string') return j.message;
    if (j.detail !== undefined) return typeof j.detail === 'string' ? j.detail : JSON.stringify(j.detail).slice(0, 300);
  } catch {
    // not JSON
  }
  return body.trim().slice(0, 300);
}

function positive(x: unknown): number | undefined {
  return typeof x === 'number' && Number.isInteger(x) && x > 0 ? x : undefined;
}

function object(x: unknown): Record<string, unknown> | undefined {
  return x !== null && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : undefined;
}
