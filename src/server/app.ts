/**
 * `lynx serve`'s HTTP surface on fastify: OpenAI's chat and text completion endpoints (streaming and not), the model
 * list, health and Prometheus metrics. Handlers validate, admit, run the completion and format the answer; the work
 * itself is in completion.ts, the model in host.ts.
 */
import { randomInt, randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { renderChatForModel } from '../reasoning/prompt-tokens.js';
import { ContextFullError, DisposedError, type SamplerOptions } from '../engine/index.js';
import { LynxError } from '../util/errors.js';
import { ApiError, badRequest } from './api-error.js';
import { runCompletion, topLogprobEntries, type CompletionJob, type CompletionResult, type TracePiece } from './completion.js';
import type { ModelHost } from './host.js';
import { ReasoningSplitter } from './reasoning-split.js';
import { ChatRequestSchema, CompletionRequestSchema, TokenizeRequestSchema, parseBody, type ChatRequest, type CompletionRequest, type EarlyExit } from './schemas.js';
import { SseStream } from './sse.js';
import { DEFAULT_SAMPLER } from '../reasoning/method.js';
import { ZST_INSTRUCTION } from '../tasks/prompts.js';
import { playgroundHtml } from './playground/page.js';
import { playgroundSets } from './playground/problems.js';

export interface AppOptions {
  /** Require `Authorization: Bearer KEY` on /v1/*. */
  apiKey?: string;
  /** Largest request body in bytes (413 beyond). Default 1 MiB. */
  bodyLimit?: number;
  /** max_tokens when a request gives none. Default 4096 (capped by the context). */
  defaultMaxTokens?: number;
  /** A request still running after this long is stopped with a 503. Default 10 minutes. */
  requestTimeoutMs?: number;
  /** Comment lines on a quiet stream, so proxies keep it open. Default 15 s. */
  keepAliveMs?: number;
  /** Early exit for requests that do not ask (clients that cannot send extra fields). Default none. */
  defaultEarlyExit?: EarlyExit;
  /** Benchmark data folder for the playground's problem lists (default $LYNX_DATA_DIR or ../shared/data). */
  dataDir?: string;
}

/** Cells kept free per request beyond max_tokens: the exit cue and the answer after it. */
const EXIT_ROOM = 128;

export function buildApp(host: ModelHost, o: AppOptions = {}): FastifyInstance {
  const app = Fastify({ bodyLimit: o.bodyLimit ?? 1 << 20, logger: false, return503OnClosing: true });
  const metrics = host.metrics;

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const e = toApiError(err);
    metrics.requests.inc({ endpoint: endpointOf(req), status: String(e.status) });
    void reply.status(e.status).send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new ApiError(404, `no route ${req.method} ${req.url}`, 'not_found_error', null, 'not_found');
    void reply.status(404).send(e.toJSON());
  });
  app.addHook('onRequest', async (req) => {
    if (!o.apiKey || !req.url.startsWith('/v1/')) return;
    if (req.headers.authorization !== `Bearer ${o.apiKey}`) {
      throw new ApiError(401, 'a valid API key is required: send Authorization: Bearer <key>', 'authentication_error', null, 'invalid_api_key');
    }
  });

  // The playground: a page on this server's own streaming API (docs/server.md).
  let page: string | undefined;
  app.get('/', async (_req, reply) => {
    host.ready;
    page ??= playgroundHtml({ model: host.servedName, rules: host.rules, sets: playgroundSets(o.dataDir), instruction: ZST_INSTRUCTION });
    return reply.type('text/html; charset=utf-8').send(page);
  });

  // Browsers ask for it; an empty answer keeps their consoles clean.
  app.get('/favicon.ico', async (_req, reply) => reply.status(204).send());

  app.get('/health', async (_req, reply) => {
    if (host.status === 'ready') return { status: 'ok' };
    return reply.status(503).send({ status: host.status, ...(host.failure ? { error: host.failure } : {}) });
  });

  app.get('/metrics', async (_req, reply) => {
    metrics.running.set(host.admission.active);
    metrics.queueDepth.set(host.admission.queued);
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.get('/v1/models', async () => ({
    object: 'list',
    data: [
      {
        id: host.servedName,
        object: 'model',
        created: 0,
        owned_by: 'lynx',
        max_model_len: host.options.contextPerRequest,
        early_exit: { methods: ['none', ...(host.options.probe ? ['lynx'] : []), 'deer', 'dynasor'], calibrated: host.rules },
      },
    ],
  }));

  // vLLM's and SGLang's tokenizer endpoint: what a remote client compares its own tokenizer with (docs/scale-out.md).
  const tokenize = async (req: FastifyRequest) => {
    const body = parseBody(TokenizeRequestSchema, req.body);
    const { model } = host.ready;
    checkModelName(host, body.model);
    const tokens = model.tokenize(body.prompt, { addSpecial: (body.add_special_tokens ?? true) && model.info.addBos, parseSpecial: true });
    return { tokens, count: tokens.length, max_model_len: host.options.contextPerRequest };
  };
  app.post('/tokenize', tokenize);
  app.post('/v1/tokenize', tokenize);

  app.post('/v1/chat/completions', async (req, reply) => {
    const body = parseBody(ChatRequestSchema, req.body);
    const { model } = host.ready;
    checkModelName(host, body.model);
    const messages = body.messages.map((m) => ({ role: m.role === 'developer' ? ('system' as const) : m.role, content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('') }));
    const rendered = renderChatForModel(model, messages);
    const promptTokens = model.tokenize(rendered, { addSpecial: false, parseSpecial: true });
    const job = jobOf(host, o, body, promptTokens, body.max_completion_tokens ?? body.max_tokens, body.logprobs ? (body.top_logprobs ?? 0) : undefined, 'messages');
    const thinking = /<think>\s*$/.test(rendered);
    return serve(req, reply, body.stream === true, job, {
      id: `chatcmpl-${randomUUID()}`,
      object: 'chat.completion',
      include_usage: body.stream_options?.include_usage === true,
      format: chatFormat(host, thinking, body.logprobs === true),
    });
  });

  app.post('/v1/completions', async (req, reply) => {
    const body = parseBody(CompletionRequestSchema, req.body);
    const { model } = host.ready;
    checkModelName(host, body.model);
    const p = Array.isArray(body.prompt) && body.prompt.length === 1 && typeof body.prompt[0] !== 'number' ? body.prompt[0]! : body.prompt;
    const promptTokens = typeof p === 'string' ? model.tokenize(p, { addSpecial: model.info.addBos, parseSpecial: true }) : (p as number[]);
    for (const t of promptTokens) if (t >= model.info.nVocab) throw badRequest(`prompt: token id ${t} is outside the vocabulary (${model.info.nVocab} tokens)`, 'prompt');
    const job = jobOf(host, o, body, promptTokens, body.max_tokens, body.logprobs ?? undefined, 'prompt');
    if (body.sampler_seed !== undefined && body.sampler_seed !== null) {
      if (job.earlyExit.method !== 'none') throw badRequest('sampler_seed: only a request without early exit takes the sampler\'s own seed (give seed instead)', 'sampler_seed');
      job.samplerSeed = body.sampler_seed;
    }
    return serve(req, reply, body.stream === true, job, {
      id: `cmpl-${randomUUID()}`,
      object: 'text_completion',
      include_usage: body.stream_options?.include_usage === true,
      format: textFormat(host, body.logprobs !== undefined && body.logprobs !== null, body.return_token_ids === true, promptTokens, body.return_tokens_as_token_ids === true),
    });
  });

  /** Run one admitted job and answer it, as one JSON object or as a stream of chunks. */
  async function serve(req: FastifyRequest, reply: FastifyReply, stream: boolean, job: CompletionJob, r: ResponseShape): Promise<unknown> {
    const t0 = performance.now();
    const endpoint = endpointOf(req);
    const controller = new AbortController();
    // The client went away (or the request timed out): stop decoding and free its sequences now.
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) controller.abort(new ApiError(499, 'the client closed the connection'));
    });
    const timeout = setTimeout(
      () => controller.abort(new ApiError(503, `the request ran past the server's ${(o.requestTimeoutMs ?? 600_000) / 1000} s limit`, 'service_unavailable', null, 'timeout')),
      o.requestTimeoutMs ?? 600_000,
    );
    const created = Math.floor(Date.now() / 1000);
    const base = { id: r.id, created, model: host.servedName };
    metrics.promptTokens.inc(job.promptTokens.length);
    let release: (() => void) | undefined;
    let sse: SseStream | undefined;
    let lastToken = 0;
    const timing = (piece: TracePiece) => {
      if (piece.tokens.length === 0) return;
      const now = performance.now();
      if (lastToken === 0) metrics.ttft.observe((now - t0) / 1000);
      else metrics.itl.observe((now - lastToken) / 1000);
      lastToken = now;
    };
    try {
      release = await host.admission.acquire(controller.signal);
      const delta = r.format.delta();
      if (stream) {
        reply.hijack();
        sse = new SseStream(reply.raw, o.keepAliveMs ?? 15_000);
        const chunk = (c: Record<string, unknown>) => sse!.send({ ...base, object: `${r.object}.chunk`.replace('text_completion.chunk', 'text_completion'), ...c });
        const first = r.format.start();
        if (first) chunk({ choices: [{ index: 0, ...first, finish_reason: null }] });
        const result = await runCompletion(host, job, controller.signal, {
          onPiece: (piece) => {
            timing(piece);
            const d = delta(piece);
            if (d) chunk({ choices: [{ index: 0, ...d, finish_reason: null }] });
          },
          onCueEvent: (ev) => chunk({ choices: [], cue_event: cueEvent(ev, host, job) }),
        });
        const tail = delta(null);
        chunk({
          choices: [{ index: 0, ...(tail ?? r.format.emptyDelta()), finish_reason: result.finishReason }],
          ...(result.earlyExit ? { early_exit: report(result) } : {}),
          ...(result.draft ? { draft: result.draft } : {}),
        });
        if (r.include_usage) chunk({ choices: [], usage: usage(job, result) });
        sse.done();
        account(result);
        metrics.requests.inc({ endpoint, status: '200' });
        return reply;
      }
      const pieces: TracePiece[] = [];
      const result = await runCompletion(host, job, controller.signal, { onPiece: (p) => (timing(p), pieces.push(p)) });
      for (const p of pieces) delta(p);
      delta(null);
      account(result);
      metrics.requests.inc({ endpoint, status: '200' });
      return {
        ...base,
        object: r.object,
        choices: [{ index: 0, ...r.format.whole(result), finish_reason: result.finishReason }],
        usage: usage(job, result),
        ...(result.earlyExit ? { early_exit: report(result) } : {}),
        ...(result.draft ? { draft: result.draft } : {}),
        ...r.format.extra(),
      };
    } catch (err) {
      const e = toApiError(err as Error);
      if (sse) {
        // Headers are sent: the error goes into the stream, as OpenAI's and vLLM's servers do.
        metrics.requests.inc({ endpoint, status: String(e.status) });
        sse.send(e.toJSON());
        sse.done();
        return reply;
      }
      throw e;
    } finally {
      clearTimeout(timeout);
      release?.();
      metrics.duration.observe((performance.now() - t0) / 1000);
    }
  }

  function account(r: CompletionResult): void {
    metrics.completionTokens.inc(r.completionTokens);
    metrics.decodedTokens.inc(r.earlyExit?.tokensDecoded ?? r.completionTokens);
    if (r.earlyExit?.triggered) metrics.exits.inc({ method: r.earlyExit.method });
  }

  return app;
}

/** How the two endpoints shape their answer: chat splits reasoning from content; text completions do not. */
interface ResponseFormat {
  /** The first stream chunk's choice (chat: the role), if any. */
  start(): Record<string, unknown> | null;
  /** A fresh accumulator: each piece's stream choice (null: nothing to send); `null` flushes the end. */
  delta(): (piece: TracePiece | null) => Record<string, unknown> | null;
  emptyDelta(): Record<string, unknown>;
  /** The non-streamed choice, from what the accumulator saw. */
  whole(result: CompletionResult): Record<string, unknown>;
  extra(): Record<string, unknown>;
}

interface ResponseShape {
  id: string;
  object: 'chat.completion' | 'text_completion';
  include_usage: boolean;
  format: ResponseFormat;
}

function chatFormat(host: ModelHost, thinking: boolean, withLogprobs: boolean): ResponseFormat {
  const vocab = host.ready.model;
  let reasoning = '';
  let content = '';
  let logprobs: unknown[] = [];
  return {
    start: () => ({ delta: { role: 'assistant', content: '' }, logprobs: null }),
    emptyDelta: () => ({ delta: {}, logprobs: null }),
    delta: () => {
      const splitter = new ReasoningSplitter(thinking);
      reasoning = '';
      content = '';
      logprobs = [];
      return (piece) => {
        const d = piece ? splitter.push(piece.text) : splitter.finish();
        reasoning += d.reasoning;
        content += d.content;
        const lp = withLogprobs && piece && d.content !== '' ? piece.tokens.map((t) => tokenLogprob(vocab, t)) : [];
        logprobs.push(...lp);
        if (d.reasoning === '' && d.content === '') return null;
        return {
          delta: { ...(d.reasoning !== '' ? { reasoning_content: d.reasoning } : {}), ...(d.content !== '' ? { content: d.content } : {}) },
          logprobs: withLogprobs && lp.length > 0 ? { content: lp } : null,
        };
      };
    },
    whole: () => ({
      message: { role: 'assistant', content, reasoning_content: thinking ? reasoning : null },
      logprobs: withLogprobs ? { content: logprobs } : null,
    }),
    extra: () => ({}),
  };
}

function textFormat(host: ModelHost, withLogprobs: boolean, withIds: boolean, promptTokens: number[], idsAsTokens = false): ResponseFormat {
  const vocab = host.ready.model;
  // vLLM's return_tokens_as_token_ids: `token_id:N` keeps apart tokens whose texts are the same (or not valid UTF-8).
  const name = (id: number, text: () => string) => (idsAsTokens ? `token_id:${id}` : text());
  let text = '';
  let ids: number[] = [];
  let lp = { tokens: [] as string[], token_logprobs: [] as (number | null)[], top_logprobs: [] as Record<string, number>[] };
  const logprobsOf = (piece: TracePiece) => {
    const out = { tokens: [] as string[], token_logprobs: [] as (number | null)[], top_logprobs: [] as Record<string, number>[] };
    for (const t of piece.tokens) {
      out.tokens.push(name(t.id, () => vocab.tokenPiece(t.id)));
      out.token_logprobs.push(t.logprob ?? null);
      const top = topLogprobEntries(vocab, t.topLogprobs);
      out.top_logprobs.push(Object.fromEntries((t.topLogprobs ?? []).map((x, i) => [name(x.token, () => top[i]!.token), x.logprob])));
    }
    return out;
  };
  return {
    start: () => null,
    emptyDelta: () => ({ text: '', logprobs: null }),
    delta: () => {
      text = '';
      ids = [];
      lp = { tokens: [], token_logprobs: [], top_logprobs: [] };
      return (piece) => {
        // A piece may carry tokens and no text (a trailing, incomplete UTF-8 character): its ids still go out.
        if (!piece || (piece.text === '' && piece.tokens.length === 0)) return null;
        text += piece.text;
        const pieceIds = piece.tokens.map((t) => t.id);
        ids.push(...pieceIds);
        const l = withLogprobs ? logprobsOf(piece) : null;
        if (l) {
          lp.tokens.push(...l.tokens);
          lp.token_logprobs.push(...l.token_logprobs);
          lp.top_logprobs.push(...l.top_logprobs);
        }
        return { text: piece.text, logprobs: l, ...(withIds ? { token_ids: pieceIds } : {}) };
      };
    },
    whole: () => ({ text, logprobs: withLogprobs ? lp : null, ...(withIds ? { token_ids: ids } : {}) }),
    extra: () => (withIds ? { prompt_token_ids: promptTokens } : {}),
  };
}

function tokenLogprob(vocab: { tokenBytes(t: number): Uint8Array }, t: TracePiece['tokens'][number]) {
  const bytes = vocab.tokenBytes(t.id);
  return { token: Buffer.from(bytes).toString('utf8'), logprob: t.logprob ?? 0, bytes: Array.from(bytes), top_logprobs: topLogprobEntries(vocab, t.topLogprobs) };
}

/** The job a request describes, checked against the context a request may use. */
function jobOf(
  host: ModelHost,
  o: AppOptions,
  body: ChatRequest | CompletionRequest,
  promptTokens: number[],
  maxTokens: number | null | undefined,
  logprobs: number | undefined,
  promptParam: string,
): CompletionJob {
  if (promptTokens.length === 0) throw badRequest(`${promptParam}: the prompt is empty`, promptParam);
  const room = host.options.contextPerRequest - promptTokens.length - EXIT_ROOM;
  if (room < 1) {
    throw badRequest(
      `${promptParam}: the prompt has ${promptTokens.length} tokens; a request may use ${host.options.contextPerRequest} (prompt + max_tokens + ${EXIT_ROOM} for the exit)`,
      promptParam,
      'context_length_exceeded',
    );
  }
  const max = maxTokens ?? Math.min(o.defaultMaxTokens ?? 4096, room);
  if (max > room) {
    throw badRequest(
      `max_tokens: ${max} + ${promptTokens.length} prompt tokens + ${EXIT_ROOM} for the exit exceed the ${host.options.contextPerRequest} tokens a request may use; ask for at most ${room}`,
      'max_tokens',
      'context_length_exceeded',
    );
  }
  const earlyExit = body.early_exit ?? o.defaultEarlyExit ?? { method: 'none' };
  if (earlyExit.method === 'lynx') host.policy(earlyExit.rule, earlyExit.delta); // a 400 now, not mid-stream
  const draft = body.draft && body.draft.type !== 'none' ? body.draft : undefined;
  if (draft) host.decoding(draft); // a 400 now when the server has no heads or draft model
  return {
    promptTokens,
    maxTokens: max,
    sampler: samplerOfRequest(body),
    // No seed: a fresh one per request (OpenAI's semantics); with one, exactly `lynx run --seed`'s trace.
    seed: body.seed ?? randomInt(0, 2 ** 31),
    stop: body.stop === undefined || body.stop === null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop,
    logprobs,
    earlyExit,
    ...(draft ? { draft } : {}),
  };
}

/** The sampler a request asks for; Mirostat and Top-H do their own truncation (top_p, top_k and min_p then refused). */
function samplerOfRequest(body: ChatRequest | CompletionRequest): SamplerOptions {
  const own = (body.mirostat ?? 0) > 0 ? 'mirostat' : body.top_h != null ? 'top_h' : null;
  if (own) {
    for (const k of ['top_p', 'top_k', 'min_p'] as const) {
      const v = body[k];
      if (v !== undefined && v !== null && !(k === 'top_p' ? v === 1 : v <= 0)) throw badRequest(`${k}: ${own} does its own truncation; leave ${k} out`, k);
    }
  }
  if (body.annealing && (body.mirostat ?? 0) > 0) throw badRequest('annealing: not with mirostat', 'annealing');
  if (body.annealing && body.annealing.tau_min > body.annealing.tau_max) throw badRequest('annealing.tau_min: must be at most tau_max', 'annealing.tau_min');
  return {
    temperature: body.temperature ?? DEFAULT_SAMPLER.temperature,
    ...(own ? {} : { topP: body.top_p ?? DEFAULT_SAMPLER.topP }),
    ...(!own && body.top_k != null && body.top_k > 0 ? { topK: body.top_k } : {}),
    ...(!own && body.min_p != null && body.min_p > 0 ? { minP: body.min_p } : {}),
    ...((body.mirostat ?? 0) > 0 ? { mirostat: { version: body.mirostat as 1 | 2, tau: body.mirostat_tau ?? 5, eta: body.mirostat_eta ?? 0.1 } } : {}),
    ...(body.top_h != null ? { topH: body.top_h } : {}),
    ...(body.annealing ? { annealing: { tauMax: body.annealing.tau_max, tauMin: body.annealing.tau_min, decay: body.annealing.decay, warmup: body.annealing.warmup } } : {}),
  };
}

function checkModelName(host: ModelHost, name: string | null | undefined): void {
  if (name && name !== host.servedName) {
    throw new ApiError(404, `the model '${name}' does not exist here; this server serves '${host.servedName}'`, 'not_found_error', 'model', 'model_not_found');
  }
}

function usage(job: CompletionJob, r: CompletionResult) {
  return {
    prompt_tokens: job.promptTokens.length,
    completion_tokens: r.completionTokens,
    total_tokens: job.promptTokens.length + r.completionTokens,
    completion_tokens_details: { reasoning_tokens: r.reasoningTokens },
  };
}

function report(r: CompletionResult) {
  const e = r.earlyExit!;
  return {
    method: e.method,
    ...(e.rule ? { rule: e.rule, delta: e.delta } : {}),
    triggered: e.triggered,
    event: e.event,
    cue: e.cue,
    score: e.score,
    threshold: e.threshold,
    position: e.position,
    tokens_decoded: e.tokensDecoded,
  };
}

function cueEvent(ev: { index: number; position: number; charOffset: number; cue: string; word: string; score: number; exit: boolean }, host: ModelHost, job: CompletionJob) {
  const e = job.earlyExit;
  const threshold = e.method === 'lynx' ? host.policy(e.rule, e.delta).rule.threshold : null;
  return { index: ev.index, position: ev.position, char_offset: ev.charOffset, cue: ev.cue, word: ev.word, score: ev.score, threshold, exit: ev.exit };
}

function endpointOf(req: FastifyRequest): string {
  return req.routeOptions?.url ?? 'unknown';
}

/** Any error as the API reports it: ours as they are, fastify's by their status, the engine's by what they mean. */
export function toApiError(err: Error & { statusCode?: number; code?: string }): ApiError {
  if (err instanceof ApiError) return err;
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new ApiError(413, 'the request body is too large', 'invalid_request_error', null, 'request_too_large');
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return badRequest('send the request body as JSON (content-type: application/json)');
  if (err.statusCode === 400 || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err instanceof SyntaxError) return badRequest(`the request body is not valid JSON: ${err.message}`);
  if (err instanceof ContextFullError || err instanceof DisposedError) return new ApiError(503, err.message, 'service_unavailable', null, 'overloaded');
  if (err instanceof LynxError) return badRequest(err.message);
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return new ApiError(err.statusCode, err.message);
  return new ApiError(500, `internal error: ${err.message}`, 'server_error');
}
