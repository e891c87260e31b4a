/**
 * Speculative decoding as a decoding mode: a TokenPredictor drafts up to `draftMax` tokens after the pending one,
 * the full model decodes the pending token and every draft in one batched decode with logits at every row, the
 * acceptance rule keeps a prefix of the drafts and gives the full model's next token, and the rejected drafts leave
 * the KV cache again. Each verification emits between one token (every draft rejected) and draftMax + 1.
 *
 * Lossless: greedy decoding emits the full model's argmax at every position; sampling emits tokens distributed as
 * the full model's (rejection rule) or, for a seed, the very tokens of plain sampling (match rule). One caveat, for
 * greedy decoding and the match rule alike: the logits of a batched decode equal those of one-token decodes only to
 * float rounding (the matrix kernels sum in another order), so where two tokens are within that rounding of each
 * other the argmax can differ from plain decoding's; test/speculative.test.ts measures how rarely and bounds it.
 */
import { Rng } from '../../util/rng.js';
import type { SamplerOptions } from '../sampler.js';
import { logprobs } from '../sampler.js';
import type { GeneratedToken } from '../sequence.js';
import { AbortError, LynxEngineUsageError } from '../errors.js';
import { acceptDrafts, type AcceptRule } from './acceptance.js';
import { drawFrom, samplerProbs } from './distribution.js';
import { emptyStats, type DecodingMode, type DecodingRun, type DecodingStats, type PendingToken } from './mode.js';
import type { DraftToken, PredictorFactory } from './predictor.js';

export interface SpeculativeOptions {
  /** A predictor for each generation (selfDraftPredictor, draftModelPredictor, or one of your own). */
  predictor: PredictorFactory;
  /** Drafts per verification at most (γ), 1 to 64. Default 5. */
  draftMax?: number;
  /**
   * Sampling only (greedy decoding accepts by argmax): 'rejection' (default), the standard rule, or 'match', which
   * keeps plain sampling's tokens for a seed at a lower acceptance rate.
   */
  rule?: 'rejection' | 'match';
  /** Name for messages and records. */
  name?: string;
}

export const DEFAULT_DRAFT_MAX = 5;

/** A decoding mode that drafts with `predictor` and verifies with the full model (see the file comment). */
export function speculativeDecoding(o: SpeculativeOptions): DecodingMode {
  const draftMax = o.draftMax ?? DEFAULT_DRAFT_MAX;
  if (!Number.isInteger(draftMax) || draftMax < 1 || draftMax > 64) throw new LynxEngineUsageError(`draftMax must be an integer from 1 to 64, got ${draftMax}`);
  const rule = o.rule ?? 'rejection';
  if (rule !== 'rejection' && rule !== 'match') throw new LynxEngineUsageError(`rule must be 'rejection' or 'match', got ${String(rule)}`);
  const stats = emptyStats();
  return {
    name: o.name ?? `speculative(draft-max ${draftMax})`,
    lossless: true,
    stats,
    run: (r) => runSpeculative(r, o.predictor, draftMax, rule, stats),
  };
}

async function* runSpeculative(
  r: DecodingRun,
  factory: PredictorFactory,
  draftMax: number,
  samplingRule: 'rejection' | 'match',
  stats: DecodingStats,
): AsyncGenerator<GeneratedToken, void, void> {
  const { seq, opts, sampler, stops } = r;
  const signal = opts.signal;
  const model = seq.context.model;
  const nVocab = model.info.nVocab;
  const rule: AcceptRule = sampler.greedy ? 'greedy' : samplingRule;
  const samplerOptions: SamplerOptions = sampler.options;
  const rng = Rng.derive(samplerOptions.seed ?? 0, 'speculative');
  const uniform = () => rng.next();
  const targetProbs = (logits: Float32Array) => samplerProbs(logits, samplerOptions);
  const draw =
    rule === 'rejection'
      ? (logits: Float32Array): DraftToken => {
          const probs = samplerProbs(logits, samplerOptions);
          return { token: drawFrom(probs, uniform()), probs };
        }
      : undefined;
  const tapLayers = opts.tapLayers && opts.tapLayers.length > 0 ? opts.tapLayers : undefined;
  const predictor = factory(seq);
  const counted = { partialDecodes: 0, partialStopsIgnored: 0 };
  stats.runs++;
  let pending: PendingToken = r.first;
  let index = 0;
  // What the caller has seen: the sequence's length then, and the logits after its last token.
  let seen = seq.length;
  let logitsAfterSeen: Float32Array | undefined;
  try {
    while (index < opts.maxTokens) {
      if (signal?.aborted) throw new AbortError('generate() was aborted', { cause: signal.reason });
      const first = stops.push(pending.token);
      if (first.stop) {
        yield { token: pending.token, index, text: first.piece, stopped: true, logprob: pending.logprob, topLogprobs: pending.top };
        return;
      }
      const base = seq.length;
      const room = Math.min(draftMax, opts.maxTokens - index - 1, seq.context.nCtx - base - 1, seq.context.nBatch - 1);
      const t0 = performance.now();
      const drafts = room > 0 ? await predictor.predict({ target: seq, pending: pending.token, max: room, draw, signal }) : [];
      const t1 = performance.now();
      stats.draftMs += t1 - t0;
      if (predictor.counters) {
        stats.partialDecodes += predictor.counters.partialDecodes - counted.partialDecodes;
        stats.partialStopsIgnored += predictor.counters.partialStopsIgnored - counted.partialStopsIgnored;
        Object.assign(counted, predictor.counters);
      }
      const batch = [pending.token, ...drafts.map((d) => d.token)];
      // Every row tapped: which tokens' hidden states are wanted is asked (tapWhen) only once they are accepted.
      const v = await seq.extend(batch, { taps: tapLayers ? { layers: tapLayers, positions: batch.map((_, i) => i) } : undefined, signal });
      stats.verifyMs += performance.now() - t1;
      stats.fullDecodes++;
      const row = (i: number) => v.rows.subarray(i * nVocab, (i + 1) * nVocab);
      const verdict = acceptDrafts(drafts, row, { rule, sampleRow: (l) => sampler.sampleFromLogits(l), targetProbs, uniform });
      stats.drafted += drafts.length;
      stats.accepted += verdict.accepted;
      if (drafts.length > 0 && verdict.accepted === drafts.length) stats.allAccepted++;
      // The rejected drafts leave the KV cache; the logits after the last kept token are its row.
      const kept = 1 + verdict.accepted;
      seq.cutTo(base + kept, row(verdict.accepted));
      const hiddenOf = (i: number) => {
        if (!tapLayers || !v.hidden) return undefined;
        const n = model.info.nEmbd;
        return new Map(tapLayers.map((l) => [l, v.hidden!.get(l)!.slice(i * n, (i + 1) * n)]));
      };
      const tapped = (i: number, token: number) => (tapLayers && (opts.tapWhen ? opts.tapWhen(token, stops.text) : true) ? hiddenOf(i) : undefined);
      for (let i = 0; i < kept; i++) {
        const token = batch[i]!;
        let piece = first.piece;
        let lp: { logprob?: number; top?: PendingToken['top'] } = { logprob: pending.logprob, top: pending.top };
        if (i > 0) {
          const s = stops.push(token);
          piece = s.piece;
          if (r.wantLogprob) {
            const l = logprobs(row(i - 1), token, r.topLogprobs);
            lp = { logprob: l.logprob, top: r.topLogprobs > 0 ? l.top : undefined };
          } else lp = {};
          if (s.stop) {
            // Not part of the sequence, like any token that stops generation.
            seq.cutTo(base + i, row(i - 1));
            seen = base + i;
            logitsAfterSeen = row(i - 1);
            yield { token, index, text: piece, stopped: true, logprob: lp.logprob, topLogprobs: lp.top, drafted: true };
            return;
          }
        }
        const hidden = tapped(i, token);
        seen = base + i + 1;
        logitsAfterSeen = row(i);
        stats.tokens++;
        yield { token, index, text: piece, stopped: false, logprob: lp.logprob, topLogprobs: lp.top, hidden, drafted: i > 0 ? true : undefined };
        index++;
        if (signal?.aborted) throw new AbortError('generate() was aborted', { cause: signal.reason });
      }
      const next = verdict.next;
      if (r.wantLogprob) {
        const l = logprobs(row(verdict.accepted), next, r.topLogprobs);
        pending = { token: next, logprob: l.logprob, top: r.topLogprobs > 0 ? l.top : undefined };
      } else pending = { token: next };
    }
  } finally {
    // A consumer that stopped between the tokens of one verification: the sequence holds exactly what it has seen.
    if (!seq.disposed && seq.length > seen) seq.cutTo(seen, logitsAfterSeen);
    predictor.dispose();
  }
}
