/**
 * Cue events: the places in a reasoning trace where LYNX may decide to exit.
 *
 * LYNX (`find_pattern_positions_by_tokens`) lowercases the decoded text and takes every *substring* match of each
 * cue; the event is the first token whose cumulative decoded text reaches the end of the match, i.e. the token
 * holding the cue's last letter. Its hidden state is the feature vector, and a forced exit cuts the trace just
 * before that token.
 *
 * This module keeps LYNX's event position (the token holding the last letter) but matches cues as whole words:
 * `await`, `waiting` and `Waits` are not `wait`. A word is a maximal run of letters, digits, marks and `_`; it has
 * ended when the next character is anything else, when thinking ends, or when the stream ends. The next character is
 * often in the next token (`" Wait"` then `","`), so the streaming detector may only *confirm* a cue one token after
 * the token that completed it. Because the hidden state must be captured in the decode step of the completing token,
 * the detector also says, for every token, whether it completes a word that is or may still become a cue
 * (`capturesLastToken`); the caller taps that token and drops the capture if the cue is not confirmed.
 *
 * Cues after the end of thinking (`</think>` or a token flagged as ending thinking) are not events.
 */
import { InvalidInputError } from '../../util/errors.js';

/** Cue lists. `default` is what LYNX's pipeline scripts search; `paper` is the pair the paper names and
 * LYNX's original localizer defaults to (`hmm`, `wait`). A trailing `+` lets the last letter repeat (`hmm+`:
 * `hmm`, `hmmm`, ...). */
export const CUE_VARIANTS = {
  default: ['hmm+', 'wait', 'alternatively'],
  paper: ['hmm+', 'wait'],
} as const;

export type CueVariant = keyof typeof CUE_VARIANTS;

/** The end-of-thinking marker as decoded text. */
export const DEFAULT_THINK_END = '</think>';

export interface CueOptions {
  /** A variant name or a list of cue words (letters/digits/_ with an optional trailing `+`). Default 'default'. */
  cues?: CueVariant | readonly string[];
  /** Decoded text that ends thinking; must start with a non-word character. Default `</think>`. */
  thinkEnd?: string;
}

/** A token as fed to the detector: its decoded text, optionally flagged as the token that ends thinking. */
export type CueToken = string | { text: string; endsThinking?: boolean };

export interface CueHit {
  /** Canonical cue (the spec without `+`), e.g. `hmm` for `Hmmm`. */
  cue: string;
  /** The word as written. */
  word: string;
  /** Ordinal of this event in the trace (0-based, after de-duplication). */
  eventIndex: number;
  /** 0-based index of the token holding the word's last letter: its hidden state is the feature vector, and it
   * equals the number of generated tokens before it (LYNX's `pos_rel - 1`). */
  tokenIndex: number;
  /** 0-based index of the token holding the word's first letter (differs for cues split over tokens). */
  startTokenIndex: number;
  /** Character span of the word in the decoded text (UTF-16 offsets, end exclusive). */
  charStart: number;
  charEnd: number;
  /** Index of the token whose text showed that the word had ended (== tokenIndex when decided at once; the
   * token count when the end of the stream decided it). */
  confirmedAt: number;
}

interface CueMatcher {
  readonly specs: readonly string[];
  /** Canonical cue name if the lowercased word is a cue, else null. */
  match(lowerWord: string): string | null;
}

const WORD_CHAR = /^[\p{L}\p{N}\p{M}_]$/u;
const WORD_RUN = /[\p{L}\p{N}\p{M}_]+/gu;
const CUE_SPEC = /^[\p{L}\p{N}_]+\+?$/u;

function isWordChar(ch: string): boolean {
  return WORD_CHAR.test(ch);
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Validate cue specs and build the whole-word matcher. */
export function resolveCues(cues: CueVariant | readonly string[] = 'default'): CueMatcher {
  let specs: readonly string[];
  if (typeof cues === 'string') {
    if (!(cues in CUE_VARIANTS)) {
      throw new InvalidInputError(`unknown cue variant '${cues}': use ${Object.keys(CUE_VARIANTS).join(', ')} or a list of words`);
    }
    specs = CUE_VARIANTS[cues as CueVariant];
  } else {
    specs = cues;
  }
  if (specs.length === 0) throw new InvalidInputError('the cue list is empty: give at least one cue word');
  const exact = new Map<string, string>();
  const repeating: { re: RegExp; name: string }[] = [];
  for (const raw of specs) {
    const spec = raw.trim().toLowerCase();
    if (!CUE_SPEC.test(spec)) {
      throw new InvalidInputError(
        `cue '${raw}' is not a single word: cues are letters, digits or _ with an optional trailing + (e.g. hmm+)`,
      );
    }
    if (spec.endsWith('+')) {
      const name = spec.slice(0, -1);
      repeating.push({ re: new RegExp(`^${escapeRegex(name)}+$`, 'u'), name });
    } else {
      exact.set(spec, spec);
    }
  }
  return {
    specs: specs.slice(),
    match(lowerWord: string): string | null {
      const hit = exact.get(lowerWord);
      if (hit !== undefined) return hit;
      for (const r of repeating) if (r.re.test(lowerWord)) return r.name;
      return null;
    },
  };
}

function checkThinkEnd(thinkEnd: string, matcher: CueMatcher): void {
  if (thinkEnd.length === 0) throw new InvalidInputError('thinkEnd must not be empty');
  const first = String.fromCodePoint(thinkEnd.codePointAt(0)!);
  if (isWordChar(first)) {
    // A marker starting with a word character could glue onto a preceding word and change where it ends.
    throw new InvalidInputError(`thinkEnd '${thinkEnd}' must start with a non-word character such as '<'`);
  }
  for (const m of thinkEnd.matchAll(WORD_RUN)) {
    if (matcher.match(m[0].toLowerCase()) !== null) {
      throw new InvalidInputError(`thinkEnd '${thinkEnd}' contains the cue word '${m[0]}'`);
    }
  }
}

const NO_HITS: readonly CueHit[] = Object.freeze([]);
/** Words longer than this are never cues; stop accumulating their text. */
const MAX_WORD = 256;

/**
 * Streaming cue detector. Feed each generated token's decoded text with `push`, in order; call `finish` when the
 * stream ends. Every hit is reported exactly once, in order, by the push that confirms it (or by `finish`).
 */
export class CueDetector {
  private readonly matcher: CueMatcher;
  private readonly thinkEnd: string;
  private tokens = 0;
  private chars = 0;
  /** Tail of the text, long enough to find a think-end marker split across tokens. */
  private tail = '';
  private stopped = false;
  private finished = false;
  private events = 0;
  private lastEventToken = -1;
  private captures = false;
  // The word being read (a maximal run of word characters), if any.
  private wordStart = -1;
  private wordStartToken = -1;
  private wordLastToken = -1;
  private wordText = '';

  constructor(opts: CueOptions = {}) {
    this.matcher = resolveCues(opts.cues);
    this.thinkEnd = opts.thinkEnd ?? DEFAULT_THINK_END;
    checkThinkEnd(this.thinkEnd, this.matcher);
  }

  /** Number of tokens pushed so far. */
  get tokenCount(): number {
    return this.tokens;
  }

  /** True once thinking has ended: later cues are not events. */
  get thinkingEnded(): boolean {
    return this.stopped;
  }

  /**
   * True when the last pushed token holds the last letter of a word that is a cue or may still be confirmed as one:
   * capture this token's hidden state. Every hit ever reported had this flag set right after its token was pushed.
   */
  get capturesLastToken(): boolean {
    return this.captures;
  }

  /** A word completed by an earlier token that is a cue unless the next text continues it. */
  get pending(): { cue: string; tokenIndex: number } | null {
    if (this.wordStart < 0 || this.stopped) return null;
    const cue = this.matcher.match(this.wordText.toLowerCase());
    return cue === null ? null : { cue, tokenIndex: this.wordLastToken };
  }

  /** Feed the next token. Returns the hits this token confirmed (possibly one for the previous token). */
  push(token: CueToken): readonly CueHit[] {
    if (this.finished) throw new Error('CueDetector.push after finish');
    const text = typeof token === 'string' ? token : token.text;
    const endsThinking = typeof token !== 'string' && token.endsThinking === true;
    const index = this.tokens++;
    this.captures = false;
    if (this.stopped) {
      this.chars += text.length;
      return NO_HITS;
    }
    let hits: CueHit[] | null = null;
    const emit = (h: CueHit | null): void => {
      if (h) (hits ??= []).push(h);
    };

    if (endsThinking) {
      emit(this.endWord(index));
      this.stop(text.length);
      return hits ?? NO_HITS;
    }

    // Where does this token's text stop counting? At a think-end marker that ends inside it.
    let limit = text.length;
    const window = this.tail + text;
    const at = window.indexOf(this.thinkEnd);
    if (at >= 0) limit = Math.max(0, at - this.tail.length);

    let offset = 0;
    for (const ch of text) {
      if (offset >= limit) break;
      if (isWordChar(ch)) {
        if (this.wordStart < 0) {
          this.wordStart = this.chars + offset;
          this.wordStartToken = index;
          this.wordText = '';
        }
        if (this.wordText.length < MAX_WORD) this.wordText += ch;
        this.wordLastToken = index;
      } else {
        emit(this.endWord(index));
      }
      offset += ch.length;
    }

    if (at >= 0) {
      // The marker begins with a non-word character, so it ends any word before it.
      emit(this.endWord(index));
      this.stop(text.length);
    } else {
      this.chars += text.length;
      this.tail = window.slice(Math.max(0, window.length - (this.thinkEnd.length - 1)));
    }

    const reported = hits as CueHit[] | null;
    if (reported && reported.some((h) => h.tokenIndex === index)) this.captures = true;
    else if (this.pending?.tokenIndex === index) this.captures = true;
    return reported ?? NO_HITS;
  }

  /** The stream ended: a cue word at the very end is complete. */
  finish(): readonly CueHit[] {
    if (this.finished) return NO_HITS;
    this.finished = true;
    this.captures = false;
    if (this.stopped) return NO_HITS;
    const h = this.endWord(this.tokens);
    return h ? [h] : NO_HITS;
  }

  private stop(tokenLength: number): void {
    this.stopped = true;
    this.chars += tokenLength;
    this.wordStart = -1;
  }

  /** The current word (if any) has ended; return its hit if it is a new cue event. */
  private endWord(confirmedAt: number): CueHit | null {
    if (this.wordStart < 0) return null;
    const start = this.wordStart;
    const word = this.wordText;
    this.wordStart = -1;
    const cue = word.length < MAX_WORD ? this.matcher.match(word.toLowerCase()) : null;
    if (cue === null) return null;
    // One event per token: a second cue completing in the same token adds no new hidden state.
    if (this.wordLastToken === this.lastEventToken) return null;
    this.lastEventToken = this.wordLastToken;
    return {
      cue,
      word,
      eventIndex: this.events++,
      tokenIndex: this.wordLastToken,
      startTokenIndex: this.wordStartToken,
      charStart: start,
      charEnd: start + word.length,
      confirmedAt,
    };
  }
}

/**
 * All cue events of a complete generated token list (offline, e.g. for stored rollouts). Independent of
 * `CueDetector` but defined to agree with it exactly (tested): feeding the same tokens to a detector and calling
 * `finish` yields the same hits.
 */
export function findCueEvents(tokens: readonly CueToken[], opts: CueOptions = {}): CueHit[] {
  const matcher = resolveCues(opts.cues);
  const thinkEnd = opts.thinkEnd ?? DEFAULT_THINK_END;
  checkThinkEnd(thinkEnd, matcher);
  const ends: number[] = [];
  let text = '';
  let limit = -1;
  let limitToken = -1;
  tokens.forEach((t, i) => {
    const piece = typeof t === 'string' ? t : t.text;
    if (limit < 0 && typeof t !== 'string' && t.endsThinking === true) {
      limit = text.length;
      limitToken = i;
    }
    text += piece;
    ends.push(text.length);
  });
  const markerAt = text.indexOf(thinkEnd);
  if (markerAt >= 0 && (limit < 0 || markerAt < limit)) {
    limit = markerAt;
    limitToken = -1;
  }
  const endOfText = limit < 0;
  if (endOfText) limit = text.length;

  // First token whose cumulative end reaches `c` (LYNX's rule); tokens.length if none.
  const tokenReaching = (c: number): number => {
    let lo = 0;
    let hi = ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ends[mid]! >= c) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };

  const hits: CueHit[] = [];
  let lastToken = -1;
  for (const m of text.slice(0, limit).matchAll(WORD_RUN)) {
    const word = m[0];
    const cue = word.length < MAX_WORD ? matcher.match(word.toLowerCase()) : null;
    if (cue === null) continue;
    const charStart = m.index!;
    const charEnd = charStart + word.length;
    const tokenIndex = tokenReaching(charEnd);
    if (tokenIndex === lastToken) continue;
    lastToken = tokenIndex;
    let confirmedAt: number;
    if (charEnd < limit) confirmedAt = tokenReaching(charEnd + 1);
    else if (endOfText) confirmedAt = tokens.length;
    else if (limitToken >= 0) confirmedAt = limitToken;
    else confirmedAt = tokenReaching(charEnd + 1);
    hits.push({
      cue,
      word,
      eventIndex: hits.length,
      tokenIndex,
      startTokenIndex: tokenReaching(charStart + 1),
      charStart,
      charEnd,
      confirmedAt,
    });
  }
  return hits;
}

/**
 * LYNX's own localizer, reproduced for comparison: substring matches of each pattern in the lowercased text (no word
 * boundaries, no end-of-thinking cut), event at the first token whose cumulative text reaches the match end. Returns
 * (0-based token index, pattern) pairs sorted by token, duplicates kept, as LYNX's scripts use them.
 */
export function findCueEventsLynx(
  tokens: readonly string[],
  patterns: readonly string[] = ['hmm', 'wait', 'alternatively'],
): { tokenIndex: number; cue: string }[] {
  const ends: number[] = [];
  let text = '';
  for (const t of tokens) {
    text += t;
    ends.push(text.length);
  }
  const lower = text.toLowerCase();
  const out: { tokenIndex: number; cue: string }[] = [];
  for (const pat of patterns) {
    let from = 0;
    for (;;) {
      const k = lower.indexOf(pat, from);
      if (k < 0) break;
      const end = k + pat.length;
      let t = ends.findIndex((e) => e >= end);
      if (t < 0) t = tokens.length - 1;
      out.push({ tokenIndex: t, cue: pat });
      from = end;
    }
  }
  // Stable sort by token, like Python's sorted(key=position) over the per-pattern lists.
  return out.sort((a, b) => a.tokenIndex - b.tokenIndex);
}

/**
 * Which events of a trace enter the dataset: LYNX skips the first `skipFirst` events and keeps the next `maxEvents`
 * (0 = all), in order (its 'sequential' strategy).
 */
export function selectEvents<T>(events: readonly T[], opts: { skipFirst?: number; maxEvents?: number } = {}): T[] {
  const skipped = events.slice(Math.max(0, opts.skipFirst ?? 0));
  const cap = opts.maxEvents ?? 0;
  return cap > 0 ? skipped.slice(0, cap) : skipped;
}

/**
 * Token index (0-based) of LYNX's synthetic event for a trace without cues: `max(1, floor(0.7 * L))` as a 1-based
 * position, where L is the number of generated tokens (at least 1).
 */
export function syntheticEventIndex(generatedTokens: number, fraction = 0.7): number {
  const L = Math.max(1, Math.floor(generatedTokens));
  return Math.max(1, Math.floor(fraction * L)) - 1;
}
