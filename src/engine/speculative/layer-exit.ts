/**
 * Layer exit (adaptive early exit, BranchyLLM's decoding; lossy): each token is decoded with a watch on the
 * early-exit heads, in block order, and the decode stops at the first head whose entropy is at most its threshold;
 * that head's token is the next one. Where no head is confident the decode runs to full depth and the full model
 * chooses. Tokens are labelled with the block that chose them (GeneratedToken.exitLayer).
 *
 * The KV cache is kept, unlike the public reference, which recomputes every position: a token that exited after
 * block K leaves cells for blocks 0..K only, so it joins the sequence's partial-depth tail. Later tokens may exit at
 * blocks up to the tail's depth over it; one that needs more (no head confident by then, hidden states of deeper
 * layers asked for, or a tail of `maxTail` tokens) decodes the whole tail again at full depth in front of itself, in
 * one batched decode, so no block ever attends to cells that hold nothing. Any full-depth decode of the sequence
 * (an append, a fork's generation, plain decoding afterwards) does the same.
 */
import { argmax, logprobs } from '../sampler.js';
import type { GeneratedToken } from '../sequence.js';
import type { TapLayer } from '../context.js';
import { AbortError, LynxEngineUsageError } from '../errors.js';
import { entropy } from './distribution.js';
import { emptyStats, type DecodingMode, type DecodingRun, type DecodingStats, type PendingToken } from './mode.js';
import type { LayerHead } from './predictor.js';

export interface LayerExitOptions {
  /** Heads on intermediate blocks, in block order. */
  heads: readonly LayerHead[];
  /** Per head, the entropy (nats) at or below which its token is taken. */
  thresholds: readonly number[];
  /** Longest partial-depth tail before it is decoded again at full depth. Default 64 (and at most the batch size - 1). */
  maxTail?: number;
  name?: string;
}

export function layerExitDecoding(o: LayerExitOptions): DecodingMode {
  if (o.heads.length === 0) throw new LynxEngineUsageError('layer exit needs at least one head');
  // The tokens a layer exit emits are the head's own: a head that cannot say every token would never emit some.
  if (o.heads.some((h) => h.tokens)) throw new LynxEngineUsageError('layer exit needs heads over the whole vocabulary (a draft vocabulary is for speculative decoding only)');
  if (o.thresholds.length !== o.heads.length) throw new LynxEngineUsageError(`layer exit needs one threshold per head (${o.heads.length} heads, ${o.thresholds.length} thresholds)`);
  for (let i = 1; i < o.heads.length; i++) {
    if (!(o.heads[i]!.layer > o.heads[i - 1]!.layer)) throw new LynxEngineUsageError('layer exit needs its heads in ascending block order');
  }
  const stats = emptyStats();
  return {
    name: o.name ?? `layer-exit(${o.heads.map((h) => h.layer).join(',')})`,
    lossless: false,
    stats,
    run: (r) => runLayerExit(r, o, stats),
  };
}

async function* runLayerExit(r: DecodingRun, o: LayerExitOptions, stats: DecodingStats): AsyncGenerator<GeneratedToken, void, void> {
  const { seq, opts, sampler, stops } = r;
  const signal = opts.signal;
  const maxTail = Math.min(o.maxTail ?? 64, seq.context.nBatch - 1);
  const tapLayers = opts.tapLayers && opts.tapLayers.length > 0 ? opts.tapLayers : undefined;
  const pick = (logits: Float32Array) => (sampler.greedy ? argmax(logits) : sampler.sampleFromLogits(logits));
  const pendingOf = (logits: Float32Array, token: number): PendingToken => {
    if (!r.wantLogprob) return { token };
    const l = logprobs(logits, token, r.topLogprobs);
    return { token, logprob: l.logprob, top: r.topLogprobs > 0 ? l.top : undefined };
  };
  stats.runs++;
  let pending: PendingToken = r.first;
  let pendingExit: number | undefined;
  for (let index = 0; index < opts.maxTokens; index++) {
    if (signal?.aborted) throw new AbortError('generate() was aborted', { cause: signal.reason });
    const token = pending.token;
    const { piece, stop } = stops.push(token);
    if (stop) {
      yield { token, index, text: piece, stopped: true, logprob: pending.logprob, topLogprobs: pending.top, exitLayer: pendingExit };
      return;
    }
    const tapped = tapLayers && (opts.tapWhen ? opts.tapWhen(token, stops.text) : true);
    const tail = seq.partialTail;
    const usable = o.heads.map((h, i) => ({ h, threshold: o.thresholds[i]! })).filter(({ h }) => !tail || h.layer <= tail.depth);
    const at = seq.length;
    let hidden: Map<TapLayer, Float32Array> | undefined;
    let next: PendingToken;
    let nextExit: number | undefined;
    if (!tapped && usable.length > 0 && (!tail || at - tail.from < maxTail)) {
      let chosen: { layer: number; logits: Float32Array } | undefined;
      const t0 = performance.now();
      const probe = await seq.probe([token], at, {
        layers: usable.map(({ h }) => h.layer),
        decide: (layer, h) => {
          const u = usable.find((x) => x.h.layer === layer)!;
          const logits = u.h.logits(h);
          if (entropy(logits) > u.threshold) return false;
          chosen = { layer, logits };
          return true;
        },
      }, signal);
      stats.draftMs += performance.now() - t0;
      if (probe.exitedAt !== null) {
        stats.partialDecodes++;
        if (probe.stopHeld === false) stats.partialStopsIgnored++;
      }
      if (chosen) {
        seq.adopt([token], chosen.layer);
        const t = pick(chosen.logits);
        next = pendingOf(chosen.logits, t);
        nextExit = chosen.layer;
      } else if (probe.exitedAt === null) {
        // No head was confident and nothing stopped the decode: the token went through every block.
        seq.adopt([token], Infinity, probe.rows);
        stats.fullDecodes++;
        next = pendingOf(probe.rows!, pick(probe.rows!));
      } else {
        // Stopped at the tail's depth with no confident head: the tail and this token, again, at full depth.
        seq.dropFrom(at);
        next = await full(token, false);
      }
    } else {
      next = await full(token, tapped === true);
    }
    stats.tokens++;
    if (pendingExit !== undefined) stats.exits[pendingExit] = (stats.exits[pendingExit] ?? 0) + 1;
    yield { token, index, text: piece, stopped: false, logprob: pending.logprob, topLogprobs: pending.top, hidden, exitLayer: pendingExit };
    pending = next;
    pendingExit = nextExit;

    async function full(t: number, withTaps: boolean): Promise<PendingToken> {
      const t0 = performance.now();
      const v = await seq.extend([t], { taps: withTaps && tapLayers ? { layers: tapLayers, positions: [0] } : undefined, signal });
      stats.verifyMs += performance.now() - t0;
      stats.fullDecodes++;
      if (withTaps) hidden = v.hidden;
      return pendingOf(v.rows, pick(v.rows));
    }
  }
}
