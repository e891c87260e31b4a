/** What a composed run costs each model, and who wrote its trace: the `compose` entry of a prediction's `extra`. */
import type { Author } from './policy.js';

import type { ModelWork } from '../token-counts.js';

export type { ModelWork };

export interface ComposeStats {
  mode: string;
  small: ModelWork & {
    /** Of `decoded`: tokens of hand-back probes (the small trying to close a big segment). */
    probeTokens: number;
  };
  big: ModelWork;
  /** Who wrote the main trace's generated tokens (up to the outcome's exit; tags count as the small's). */
  trace: { small: number; big: number; input: number };
  /** Share of the main trace's model-written tokens that the big model wrote. */
  offloadShare: number;
  /** Big segments in the main trace: times the big model took over (from the small model or at the start). */
  handoffs: number;
  /** SpecReason: the small model's steps the big model kept, and those it rewrote. */
  steps?: { accepted: number; rejected: number };
}

export function newWork(): ComposeStats['small'] & ComposeStats['big'] {
  return { decoded: 0, prefilled: 0, probeTokens: 0 };
}

/** Authorship of a run of generated tokens: counts and small-to-big hand-offs. */
export function authorship(authors: readonly Author[]): Pick<ComposeStats, 'trace' | 'offloadShare' | 'handoffs'> {
  const trace = { small: 0, big: 0, input: 0 };
  let handoffs = 0;
  let last: Author | undefined;
  for (const a of authors) {
    trace[a]++;
    if (a === 'big' && last !== 'big') handoffs++;
    if (a !== 'input') last = a;
  }
  const written = trace.small + trace.big;
  return { trace, offloadShare: written === 0 ? 0 : trace.big / written, handoffs };
}

/** A run's composition figures (the run metrics' `extra.compose`): means per problem, offload share pooled by tokens. */
export interface ComposeSummary {
  mode: string;
  problems: number;
  /** Big-written share of all model-written trace tokens of the run. */
  offloadShare: number;
  /** Mean of the per-problem shares. */
  meanOffloadShare: number;
  handoffsPerProblem: number;
  /** SpecReason: share of the small model's steps the big model kept. */
  stepAcceptance?: number;
  /** Per problem: tokens decoded and prefilled by each model, and the small's hand-back probe tokens. */
  small: { decoded: number; prefilled: number; probeTokens: number };
  big: { decoded: number; prefilled: number };
}

function acceptance(stats: readonly ComposeStats[]): { stepAcceptance?: number } {
  const kept = stats.reduce((a, s) => a + (s.steps?.accepted ?? 0), 0);
  const all = kept + stats.reduce((a, s) => a + (s.steps?.rejected ?? 0), 0);
  return all === 0 ? {} : { stepAcceptance: kept / all };
}

export function summarizeCompose(stats: readonly ComposeStats[]): ComposeSummary | undefined {
  if (stats.length === 0) return undefined;
  const n = stats.length;
  const mean = (f: (s: ComposeStats) => number) => stats.reduce((a, s) => a + f(s), 0) / n;
  const big = stats.reduce((a, s) => a + s.trace.big, 0);
  const written = stats.reduce((a, s) => a + s.trace.big + s.trace.small, 0);
  return {
    mode: stats[0]!.mode,
    problems: n,
    offloadShare: written === 0 ? 0 : big / written,
    meanOffloadShare: mean((s) => s.offloadShare),
    handoffsPerProblem: mean((s) => s.handoffs),
    ...acceptance(stats),
    small: { decoded: mean((s) => s.small.decoded), prefilled: mean((s) => s.small.prefilled), probeTokens: mean((s) => s.small.probeTokens) },
    big: { decoded: mean((s) => s.big.decoded), prefilled: mean((s) => s.big.prefilled) },
  };
}
