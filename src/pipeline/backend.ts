/**
 * Where a step generates: the local engine (default) or an OpenAI-compatible server (`--backend openai`), with the
 * local model for tokenizer, chat template and hidden states. The options every generating command shares.
 */
import type { LlamaModel } from '../engine/index.js';
import { RemoteServer, type RemoteStats } from '../backends/openai/index.js';
import { UsageError } from '../util/errors.js';

export interface BackendOptions {
  /** 'local' (default): the local engine. 'openai': a server at `baseUrl`. */
  backend?: 'local' | 'openai';
  /** The server's address (its root or `/v1`). */
  baseUrl?: string;
  /** Bearer token for the server (default $OPENAI_API_KEY). */
  apiKey?: string;
  /** The served model name (default: the server's only model). */
  remoteModel?: string;
  /** Requests open on the server at once. Default 8. */
  maxInflight?: number;
  /** Seconds a request may send nothing before it is abandoned and retried. Default 600. */
  requestTimeout?: number;
  /** Tries after the first for a failing request. Default 8. */
  retries?: number;
  /** Compare the server's tokenizer with the local model's (default true). */
  vocabCheck?: boolean;
  /** Told of every retry (what failed, the try, the wait). */
  onRetry?: (reason: string, attempt: number, delayMs: number) => void;
}

export const BACKENDS = ['local', 'openai'] as const;

/** Refuse remote options without `--backend openai`, and `--backend openai` without an address. */
export function checkBackend(o: BackendOptions): 'local' | 'openai' {
  const backend = o.backend ?? 'local';
  if (!(BACKENDS as readonly string[]).includes(backend)) throw new UsageError(`--backend must be ${BACKENDS.join(' or ')}, got '${backend}'`);
  if (backend === 'openai' && !o.baseUrl) throw new UsageError('--backend openai needs --base-url URL (the server, e.g. http://127.0.0.1:8000/v1)');
  if (backend === 'local') {
    const stray = (
      [
        ['--base-url', o.baseUrl],
        ['--api-key (serve: --remote-api-key)', o.apiKey],
        ['--remote-model', o.remoteModel],
        ['--max-inflight', o.maxInflight],
        ['--request-timeout', o.requestTimeout],
        ['--retries', o.retries],
        ['--no-vocab-check', o.vocabCheck === false ? true : undefined],
      ] as const
    ).filter(([, v]) => v !== undefined);
    if (stray.length > 0) throw new UsageError(`${stray.map(([k]) => k).join(', ')} ${stray.length > 1 ? 'need' : 'needs'} --backend openai`);
  }
  return backend;
}

/** The connected server of `--backend openai` (checked against the local model), or undefined for the local engine. */
export async function connectBackend(o: BackendOptions, model: LlamaModel): Promise<RemoteServer | undefined> {
  if (checkBackend(o) === 'local') return undefined;
  return RemoteServer.connect({
    baseUrl: o.baseUrl!,
    apiKey: o.apiKey ?? process.env.OPENAI_API_KEY,
    model: o.remoteModel,
    maxInflight: o.maxInflight,
    retry: {
      ...(o.retries !== undefined ? { retries: o.retries } : {}),
      ...(o.requestTimeout !== undefined ? { idleTimeoutMs: o.requestTimeout * 1000 } : {}),
    },
    vocab: model,
    checkVocab: o.vocabCheck,
    onRetry: o.onRetry,
  });
}

/** What a progress line says about the server: requests open and waiting, retries, streams that diverged. */
export interface RemoteProgress extends RemoteStats {
  inflight: number;
  waiting: number;
}

export function remoteProgress(server: RemoteServer): RemoteProgress {
  return { ...server.stats, inflight: server.limit.active, waiting: server.limit.waiting };
}
