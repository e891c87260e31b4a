/**
 * Request bodies of the OpenAI-compatible endpoints, validated strictly where a value matters and leniently where
 * vLLM is: unknown top-level keys are ignored, every known one is type- and range-checked, and a failure names the
 * field (400, `param`). vLLM's sampling extras (top_k, min_p, return_token_ids) are accepted at the top level, as
 * the OpenAI client sends `extra_body`.
 */
import { z } from 'zod';
import { badRequest } from './api-error.js';

/** Per-request early exit. LYNX with a calibrated rule, or the peers that stop a single trace. */
export const EarlyExitSchema = z.discriminatedUnion('method', [
  z.strictObject({ method: z.literal('none') }),
  z.strictObject({
    method: z.literal('lynx'),
    delta: z.number().gt(0).lt(1).default(0.1),
    rule: z.enum(['lynx', 'ltt', 'crc']).default('lynx'),
  }),
  z.strictObject({ method: z.literal('deer'), threshold: z.number().gt(0).max(1).default(0.95) }),
  z.strictObject({
    method: z.literal('dynasor'),
    agreement: z.number().int().min(1).max(16).default(2),
    interval: z.number().int().min(1).max(4096).default(32),
  }),
]);
export type EarlyExit = z.infer<typeof EarlyExitSchema>;

/**
 * Per-request decoding: speculative decoding drafted by the server's early-exit heads (`heads`) or draft model
 * (`model`), lossless; or layer exit with the heads (`layer_exit`), lossy.
 */
const draftMax = z.number().int().min(1).max(64).default(5);
const draftRule = z.enum(['rejection', 'match']).default('rejection');
export const DraftSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('none') }),
  z.strictObject({
    type: z.literal('heads'),
    layer: z.number().int().min(0).optional(),
    accuracy_level: z.number().gt(0).lt(1).optional(),
    draft_max: draftMax,
    rule: draftRule,
  }),
  z.strictObject({ type: z.literal('model'), draft_max: draftMax, rule: draftRule }),
  z.strictObject({ type: z.literal('layer_exit'), accuracy_level: z.number().gt(0).lt(1).default(0.9) }),
]);
export type Draft = z.infer<typeof DraftSchema>;

const optional = <T extends z.ZodType>(t: T) => t.nullish();

/** Sampling and output fields shared by both endpoints. */
const common = {
  model: optional(z.string()),
  max_tokens: optional(z.number().int().min(1)),
  temperature: optional(z.number().min(0).max(2)),
  top_p: optional(z.number().gt(0).max(1)),
  top_k: optional(z.number().int().min(-1)),
  min_p: optional(z.number().min(0).max(1)),
  stop: optional(z.union([z.string().min(1), z.array(z.string().min(1)).max(4)])),
  seed: optional(z.number().int().min(0).max(2 ** 32 - 1)),
  n: optional(z.literal(1, { error: 'only n = 1 is supported' })),
  stream: optional(z.boolean()),
  stream_options: optional(z.object({ include_usage: optional(z.boolean()) })),
  early_exit: optional(EarlyExitSchema),
  // Samplers from the decoding literature (llama.cpp server's names for Mirostat).
  mirostat: optional(z.union([z.literal(0), z.literal(1), z.literal(2)])),
  mirostat_tau: optional(z.number().gt(0).max(64)),
  mirostat_eta: optional(z.number().gt(0).max(1)),
  top_h: optional(z.number().gt(0).lt(1)),
  annealing: optional(
    z.strictObject({
      tau_max: z.number().gt(0).max(100),
      tau_min: z.number().gt(0).max(100),
      decay: z.number().gt(0),
      warmup: z.number().int().min(0).optional(),
    }),
  ),
  draft: optional(DraftSchema),
};

const TextPart = z.object({ type: z.literal('text'), text: z.string() });
const Message = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(TextPart)]),
  name: optional(z.string()),
});

export const ChatRequestSchema = z.object({
  ...common,
  messages: z.array(Message).min(1),
  max_completion_tokens: optional(z.number().int().min(1)),
  logprobs: optional(z.boolean()),
  top_logprobs: optional(z.number().int().min(0).max(20)),
});
export type ChatRequest = z.infer<typeof ChatRequestSchema>;

const tokenIds = z.array(z.number().int().min(0)).min(1);
export const CompletionRequestSchema = z.object({
  ...common,
  prompt: z.union([z.string().min(1), tokenIds, z.array(z.string().min(1)).length(1), z.array(tokenIds).length(1)]),
  /** The completions API's logprobs: how many top alternatives per token (0 = only the sampled token's). */
  logprobs: optional(z.number().int().min(0).max(20)),
  echo: optional(z.literal(false, { error: 'echo is not supported' })),
  /** vLLM: return the prompt's and the completion's token ids. */
  return_token_ids: optional(z.boolean()),
  /** vLLM: name tokens in `logprobs` as `token_id:N`, so that tokens with the same text stay apart. */
  return_tokens_as_token_ids: optional(z.boolean()),
  /**
   * The seed of the sampler itself, as `seed` is on vLLM and llama.cpp (lynx's own `seed` is a base seed a trace's
   * sampler seed is derived from, as `lynx run` does). What a remote generator sends (`--backend openai`), so that a
   * rollout it asks for samples exactly as the local engine samples it. Only without early exit.
   */
  sampler_seed: optional(z.number().int().min(0).max(2 ** 32 - 1)),
});
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;

/** vLLM's /tokenize body. */
export const TokenizeRequestSchema = z.object({
  model: optional(z.string()),
  prompt: z.string(),
  add_special_tokens: optional(z.boolean()),
});

/** Parse a body or throw a 400 naming the first bad field (its JSON path) and what is wrong with it. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const param = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[') || null;
  throw badRequest(`${param ?? 'body'}: ${issue.message}`, param);
}
