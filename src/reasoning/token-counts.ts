/** Generated tokens of one answered trace, counted one way for every method: total = reasoning + exitCue + answer. */
export interface TokenCounts {
  /** Thinking tokens kept (through `</think>` on a natural end; up to the cut on an exit). */
  reasoning: number;
  /** Tokens of the exit cue appended at an early or budget exit. */
  exitCue: number;
  /** Answer tokens after `</think>` or after the exit cue. */
  answer: number;
  total: number;
}
