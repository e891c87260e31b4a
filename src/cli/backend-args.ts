/** The `--backend openai` options of every command that generates (build-dataset, eval, serve). */
import type { Command } from 'commander';
import type { BackendOptions, RemoteProgress } from '../pipeline/backend.js';
import { intOption } from './options.js';

export interface BackendArgs {
  backend: string;
  baseUrl?: string;
  /** `--api-key` (build-dataset, eval) or `--remote-api-key` (serve, whose `--api-key` guards its own endpoints). */
  apiKey?: string;
  remoteApiKey?: string;
  remoteModel?: string;
  maxInflight?: number;
  requestTimeout?: number;
  retries?: number;
  vocabCheck: boolean;
}

/** Declare the options; `keyFlag` names the server key's flag. */
export function backendOptions(command: Command, keyFlag: '--api-key' | '--remote-api-key' = '--api-key'): Command {
  return command
    .option('--backend <name>', 'local (the llama.cpp engine here) or openai (an OpenAI-compatible server: vLLM, SGLang, llama-server, lynx serve; -m still gives the tokenizer and hidden states)', 'local')
    .option('--base-url <url>', 'openai: the server, e.g. http://127.0.0.1:8000/v1')
    .option(`${keyFlag} <key>`, 'openai: the server\'s API key (default $OPENAI_API_KEY)')
    .option('--remote-model <name>', "openai: the served model name (default: the server's only model)")
    .option('--max-inflight <n>', 'openai: requests open on the server at once (default 8)', intOption('--max-inflight', 1))
    .option('--request-timeout <s>', 'openai: seconds a request may send nothing before it is retried (default 600)', intOption('--request-timeout', 1))
    .option('--retries <n>', 'openai: tries after the first for a failing request (429, 5xx, timeouts; default 8)', intOption('--retries', 0))
    .option('--no-vocab-check', "openai: do not compare the server's tokenizer with the local model's (for a server without /tokenize)");
}

export function backendOf(args: BackendArgs): BackendOptions {
  // The local engine takes none of these (so a step's options are the same from the CLI as from the library); one
  // given without --backend openai goes on, to be refused by name (checkBackend), not silently dropped.
  const remote = [args.baseUrl, args.apiKey, args.remoteApiKey, args.remoteModel, args.maxInflight, args.requestTimeout, args.retries].some((v) => v !== undefined) || args.vocabCheck === false;
  if ((args.backend ?? 'local') === 'local' && !remote) return {};
  return {
    backend: args.backend as BackendOptions['backend'],
    baseUrl: args.baseUrl,
    apiKey: args.remoteApiKey ?? args.apiKey,
    remoteModel: args.remoteModel,
    maxInflight: args.maxInflight,
    requestTimeout: args.requestTimeout,
    retries: args.retries,
    vocabCheck: args.vocabCheck,
  };
}

/** ` | 12 in flight (3 waiting), 2 retries` for a progress bar; '' for the local engine. */
export function remoteDetail(r: RemoteProgress | undefined): string {
  if (!r) return '';
  return ` | ${r.inflight} in flight${r.waiting > 0 ? ` (${r.waiting} waiting)` : ''}, ${r.retries} retries${r.divergences > 0 ? `, ${r.divergences} diverged` : ''}`;
}
