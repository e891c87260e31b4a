/**
 * A composition policy says, from the trace so far, which model writes next and how far: SplitReason's offloading
 * (the small model's tags), a random switch, logprob subselection, or one model alone. Policies are pure functions of
 * the trace (and a seed), so a forked or truncated trace continues exactly as a fresh one with the same text would,
 * with no state to copy or rewind.
 */
import type { Requirement } from '../../backends/generator.js';

/** Who wrote a token of the composed trace: appended input (prompt, exit cue), the small or the big model. */
export type Author = 'input' | 'small' | 'big';

/** What a policy sees of the trace. */
export interface TraceState {
  /** Generated tokens after the prompt (exit cues and other appended input included), in the small's vocabulary. */
  generated: number;
  /** Their text as the small model reads it (tags included). */
  text: string;
  /** Big-written tokens at the very end of the trace (the open big segment's length so far). */
  trailingBig: number;
  /** Per-problem seed of the policy's own randomness (the random switch's coins). */
  seed: number;
}

/** Hand control back to the small model when it would close the big segment (SplitReason). */
export interface HandBack {
  /** Big tokens per check: after each chunk, every prefix of it is tried. */
  every: number;
  /** The closing tag, appended (after the probe's leading whitespace) where the small model starts writing it. */
  tag: string;
  /** What the small model's greedy continuation must start with (after whitespace) to count as closing. Default: `tag`. */
  detect?: string;
}

/** Small-model drafts scored by the big model (SplitReason's logprob subselect). */
export interface Subselect {
  /** Candidates drafted at the start (sgen). */
  candidates: number;
  /** Tokens the small drafts per candidate and round (stok). */
  draftTokens: number;
  /** Keep the best 1/decay of the candidates each round (sdecay). */
  decay: number;
  /** Tokens the big adds to every kept candidate after each round (ltok; 0: none). */
  bigTokens: number;
}

/** SpecReason: small drafts one step, the big model scores it and writes it itself below the threshold. */
export interface Speculate {
  /** What ends a step (SpecReason: a blank line). */
  stepEnd: string;
  /** Text after the step that asks the big model for a score; its next token is read as a digit 0-9. */
  judge: string;
  /** Keep the small model's step at this score or above. */
  threshold: number;
  /** Longest step in tokens. */
  maxStepTokens: number;
}

export type Turn =
  /** The small model writes up to `maxTokens`, stopping early once its text contains `until`. */
  | { model: 'small'; maxTokens: number; until?: string }
  /**
   * The big model writes up to `maxTokens`; with `handBack`, control returns as soon as the small would close; when
   * `maxTokens` runs out, `closeWith` (text in the small's copy only) ends the segment.
   */
  | { model: 'big'; maxTokens: number; handBack?: HandBack; closeWith?: string; until?: string }
  /** One step drafted by the small model and judged by the big one (SpecReason). */
  | { model: 'speculate'; speculate: Speculate }
  /** Draft, score and select, then the rest of the trace follows the policy again. */
  | { model: 'select'; subselect: Subselect };

export interface CompositionPolicy {
  /** Mode name, as the run folder's method: `split`, `random-switch`, `logprob-subselect`, `small`, `big`. */
  readonly name: string;
  /** Its setting as text, e.g. `segment=128,every=8`. */
  readonly setting: string;
  /** A line for the small model's prompt (SplitReason's hint); the big model's prompt never has it. */
  readonly promptHint?: string;
  /** Texts the small model writes that the big model must not see (the tags). */
  readonly hiddenFromBig: readonly string[];
  /** What the policy needs of the small model (hand-back probes and drafts fork it). */
  readonly requiresSmall: readonly Requirement[];
  /** What it needs of the big model beyond generating (SpecReason's judge forks it). */
  readonly requiresBig?: readonly Requirement[];
  /** Whether the big model generates at all (a small-only run never loads its sequences). */
  readonly usesBig: boolean;
  nextTurn(state: TraceState): Turn;
}
