/**
 * SplitReason's offloading protocol (abdelfattah-lab/SplitReason, `modes/speculative_reasoning_perf.py`): the small
 * model marks the span it wants the big model to write with plain-text tags (not special tokens), prompted with a hint
 * line; the big model never sees the tags or the hint.
 */

export const BIG_OPEN = '<bigmodel>';
export const BIG_CLOSE = '</bigmodel>';

/** SplitReason's hint line, word for word: it goes between the question and the instruction of the small's prompt. */
export const OFFLOAD_HINT = 'You always use <bigmodel>...</bigmodel> to mark parts of the reasoning process that are important.';

/** The original's limits (its constants in brackets). */
export const SPLIT_DEFAULTS = {
  /** What a probe must write (after optional whitespace) to count as closing: the tag's first 4 characters (BIG_CLOSE[:4]). */
  detect: BIG_CLOSE.slice(0, 4),
  /** Big tokens between two hand-back checks (STREAM_BUCKET). */
  handBackEvery: 8,
  /** Longest big segment; then `</bigmodel>` is appended and the small takes over (MAX_BIG_SEGMENT). */
  segmentCap: 128,
} as const;

/**
 * Does a continuation start closing the tag? The small model's greedy continuation after a prefix of the big chunk, as
 * decoded so far: 'closes' once it reads `detect` (the tag's start) after optional whitespace, 'no' as soon as it
 * cannot, 'undecided' until then. The original samples 6 tokens at the trace's temperature and checks their first 4
 * characters; greedy is the deterministic form of "would the small model close here", and it stops decoding as soon as
 * the answer is known.
 */
export function tagVerdict(continuation: string, detect: string): 'closes' | 'no' | 'undecided' {
  const s = continuation.trimStart();
  if (s.length === 0) return 'undecided';
  if (s.startsWith(detect)) return 'closes';
  return detect.startsWith(s) ? 'undecided' : 'no';
}
