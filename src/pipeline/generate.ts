/**
 * `lynx generate`: text from a prompt (raw, no chat template), with the full model or with speculative decoding or
 * layer exit (pipeline/decoding.ts), and its timings; with a decoding mode, what it drafted and accepted.
 */
import { LlamaContext, type DecodingStats, type LlamaModel, type SamplerOptions } from '../engine/index.js';
import { InvalidInputError, UsageError } from '../util/errors.js';
import { openDecoding, type DecodingSpec } from './decoding.js';
import { openModel } from './model.js';

export interface GenerateStepOptions {
  model: LlamaModel | string;
  prompt: string;
  /** Start with the BOS token. */
  bos?: boolean;
  maxTokens: number;
  sampler: SamplerOptions;
  /** Context size. Default 4096. */
  ctx?: number;
  threads?: number;
  decoding?: DecodingSpec;
  onText?: (piece: string) => void;
  log?: (line: string) => void;
}

export interface GenerateResult {
  model: string;
  promptTokens: number[];
  tokens: number[];
  text: string;
  timings: { prefillMs: number; decodeMs: number; tokensPerSecond: number };
  /** With a decoding mode: its name, whether it is lossless, and what it drafted, accepted or exited. */
  decoding?: DecodingReport;
}

export interface DecodingReport {
  mode: string;
  lossless: boolean;
  fallback?: string;
  drafted: number;
  accepted: number;
  /** accepted / drafted. */
  acceptanceRate: number | null;
  /** Tokens per full-depth decode (a verification emits the accepted drafts and one more). */
  tokensPerFullDecode: number | null;
  /** Layer exit: tokens chosen by a head, per block. */
  exits?: Record<number, number>;
  stats: DecodingStats;
}

export function decodingReport(name: string, lossless: boolean, s: DecodingStats, fallback?: string): DecodingReport {
  return {
    mode: name,
    lossless,
    ...(fallback ? { fallback } : {}),
    drafted: s.drafted,
    accepted: s.accepted,
    acceptanceRate: s.drafted > 0 ? s.accepted / s.drafted : null,
    tokensPerFullDecode: s.fullDecodes > 0 ? s.tokens / s.fullDecodes : null,
    ...(lossless ? {} : { exits: s.exits }),
    stats: { ...s, exits: { ...s.exits } },
  };
}

export async function generateStep(o: GenerateStepOptions): Promise<GenerateResult> {
  const model = typeof o.model === 'string' ? await openModel(o.model) : o.model;
  const opened = o.decoding ? await openDecoding(model, o.decoding, { contextTokens: o.ctx ?? 4096, log: o.log }) : undefined;
  // The tap hook is what stops a partial-depth decode; without a decoding mode it is left out (not even its per-node check).
  const ctx = new LlamaContext(model, { nCtx: o.ctx ?? 4096, nSeqMax: 1, taps: opened !== undefined, threads: o.threads });
  try {
    const seq = ctx.createSequence();
    const prompt = model.tokenize(o.prompt, { addSpecial: false, parseSpecial: true });
    if (o.bos) {
      if (model.info.special.bos === undefined) throw new InvalidInputError(`--bos: ${model.info.path} has no BOS token`);
      prompt.unshift(model.info.special.bos);
    }
    if (prompt.length === 0) throw new UsageError('the prompt is empty: give --prompt text or --bos');
    if (prompt.length + o.maxTokens > ctx.nCtx) {
      throw new UsageError(
        `the prompt (${prompt.length} tokens) and --max-tokens ${o.maxTokens} need ${prompt.length + o.maxTokens} tokens, but the context holds ${ctx.nCtx} (--ctx): ` +
          `use -n ${Math.max(1, ctx.nCtx - prompt.length)} or less, or a larger --ctx`,
      );
    }
    const t0 = performance.now();
    await seq.append(prompt);
    const t1 = performance.now();
    const tokens: number[] = [];
    let text = '';
    for await (const t of seq.generate({ maxTokens: o.maxTokens, sampler: o.sampler, decoding: opened?.mode })) {
      if (t.stopped) break;
      tokens.push(t.token);
      text += t.text;
      o.onText?.(t.text);
    }
    const t2 = performance.now();
    return {
      model: model.info.path,
      promptTokens: prompt,
      tokens,
      text,
      timings: { prefillMs: t1 - t0, decodeMs: t2 - t1, tokensPerSecond: tokens.length / ((t2 - t1) / 1000) },
      ...(opened ? { decoding: decodingReport(opened.mode.name, opened.mode.lossless, opened.mode.stats, opened.fallback) } : {}),
    };
  } finally {
    ctx.dispose();
    opened?.dispose();
    if (typeof o.model === 'string') model.dispose();
  }
}
