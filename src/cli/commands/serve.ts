/** `lynx serve`: an OpenAI-compatible server with per-request early exit (src/server/). */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { shippedDemo } from '../../demo/shipped.js';
import { resolveModelPath } from '../../pipeline/model.js';
import { defaultHeadsDir } from '../../pipeline/decoding.js';
import { buildApp } from '../../server/app.js';
import { ModelHost } from '../../server/host.js';
import { EarlyExitSchema, type EarlyExit } from '../../server/schemas.js';
import { InvalidInputError, UsageError } from '../../util/errors.js';
import { intOption, threadsOption, tokensOption } from '../options.js';
import { backendOf, backendOptions, type BackendArgs } from '../backend-args.js';
import { checkBackend } from '../../pipeline/backend.js';

interface ServeArgs extends BackendArgs {
  model?: string;
  probe?: string;
  host: string;
  port: number;
  apiKey?: string;
  parallel: number;
  queue: number;
  ctx: number;
  maxTokens: number;
  threads?: number;
  servedModelName?: string;
  earlyExit?: string;
  timeout: number;
  kvType: string;
  dataDir?: string;
  heads?: string;
  draftVocab?: number;
  draftModel?: string;
}

/** `lynx:0.1`, `lynx:0.05:ltt`, `deer:0.95`, `dynasor`, `none`. */
export function parseEarlyExit(spec: string): EarlyExit {
  const [method, a, b] = spec.split(':');
  const raw: Record<string, unknown> = { method };
  if (method === 'lynx') Object.assign(raw, a !== undefined ? { delta: Number(a) } : {}, b !== undefined ? { rule: b } : {});
  if (method === 'deer' && a !== undefined) raw.threshold = Number(a);
  if (method === 'dynasor' && a !== undefined) raw.agreement = Number(a);
  const r = EarlyExitSchema.safeParse(raw);
  if (!r.success) throw new UsageError(`--early-exit '${spec}': ${r.error.issues[0]!.message} (write lynx:DELTA[:RULE], deer:THRESHOLD, dynasor[:N] or none)`);
  return r.data;
}

export function registerServe(program: Command): void {
  const command = program
    .command('serve')
    .description('serve a model over the OpenAI API (chat and text completions, streaming) with per-request early exit (early_exit: {method: "lynx", delta})')
    .option('-m, --model <path>', 'GGUF file or Hugging Face folder (default: the shipped demo model and its probe)')
    .option('--probe <dir>', 'experiment folder with probe/ and conformal/ for LYNX early exit')
    .option('--host <addr>', 'address to listen on (loopback unless you mean otherwise)', '127.0.0.1')
    .option('--port <n>', 'port', intOption('--port', 0, 65535), 8080)
    .option('--api-key <key>', 'require Authorization: Bearer KEY on /v1/* (default $LYNX_API_KEY)')
    .option('--parallel <n>', 'requests decoded at once, batched in one context', intOption('--parallel', 1), 4)
    .option('--queue <n>', 'requests that may wait beyond those (429 after)', intOption('--queue', 0), 64)
    .option('--ctx <n>', 'tokens one request may use (prompt + max_tokens + exit)', intOption('--ctx', 256, 2 ** 24), 4096)
    .option('--max-tokens <n>', 'max_tokens of a request that gives none', tokensOption('--max-tokens'), 4096)
    .option('--threads <n>', 'CPU threads', threadsOption())
    .option('--served-model-name <name>', 'the model name clients send (default: the file name)')
    .option('--early-exit <spec>', 'early exit of requests that do not ask: lynx:DELTA[:RULE], deer:T, dynasor[:N] (default none)')
    .option('--timeout <s>', 'seconds a request may run', intOption('--timeout', 1), 600)
    .option('--data-dir <dir>', "benchmark data folder for the playground's problem lists (default $LYNX_DATA_DIR or ../shared/data)")
    .option('--kv-type <t>', 'KV cache: f16 (fast) or f32 (batch-invariant: seeded requests equal lynx run token for token)', 'f16')
    .option('--heads <dir>', 'early-exit heads for requests with draft {type: "heads"} or {type: "layer_exit"} (default: the demo\'s, or heads/ beside the model when it exists)')
    .option('--draft-vocab <n>', 'heads draft from the N tokens the model emits most (cheaper on a large vocabulary; layer_exit requests are then refused)', intOption('--draft-vocab', 1))
    .option('--draft-model <path>', 'draft GGUF for requests with draft {type: "model"}');
  // `--api-key` guards this server's own endpoints, so the remote server's key is --remote-api-key here.
  backendOptions(command, '--remote-api-key')
    .action(async (args: ServeArgs) => {
      const demo = shippedDemo();
      const model = args.model ? await resolveModelPath(args.model) : demo.model;
      const probe = args.probe ?? (args.model ? undefined : demo.root);
      if (!existsSync(model)) throw new InvalidInputError(`no model at ${model}`);
      if (args.kvType !== 'f32' && args.kvType !== 'f16') throw new UsageError(`--kv-type must be f32 or f16, got '${args.kvType}'`);
      const backend = { ...backendOf({ ...args, apiKey: undefined }) };
      checkBackend(backend);
      const host = new ModelHost({
        model,
        probe: probe ? resolve(probe) : undefined,
        servedName: args.servedModelName ?? (args.model ? undefined : 'lynx-demo'),
        parallel: args.parallel,
        queue: args.queue,
        contextPerRequest: args.ctx,
        threads: args.threads,
        kvType: args.kvType,
        heads: args.heads ? resolve(args.heads) : existsSync(defaultHeadsDir(model)) ? defaultHeadsDir(model) : undefined,
        draftVocab: args.draftVocab,
        draftModel: args.draftModel,
        backend,
      });
      const app = buildApp(host, {
        apiKey: args.apiKey ?? process.env.LYNX_API_KEY,
        defaultMaxTokens: args.maxTokens,
        requestTimeoutMs: args.timeout * 1000,
        defaultEarlyExit: args.earlyExit ? parseEarlyExit(args.earlyExit) : undefined,
        dataDir: args.dataDir,
      });
      const address = await app.listen({ host: args.host, port: args.port });
      process.stderr.write(`lynx serve: ${address} (loading ${model}); playground at ${address}/\n`);
      await host.load();
      process.stderr.write(
        `lynx serve: ready — ${host.servedName}${probe ? `, LYNX rules: ${host.rules.map((r) => `${r.rule}@${r.delta}`).join(' ')}` : ''}` +
          `${host.remote ? `, generating on ${host.remote.url} (${host.remote.kind}, ${host.remote.model})` : ''}\n`,
      );
      const stop = async () => {
        await app.close();
        host.dispose();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
      await new Promise(() => {}); // serve until a signal
    });
}
