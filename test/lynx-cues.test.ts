import { describe, expect, it } from 'vitest';
import {
  CueDetector,
  findCueEvents,
  findCueEventsLynx,
  selectEvents,
  syntheticEventIndex,
  type CueHit,
  type CueOptions,
  type CueToken,
} from '../src/reasoning/lynx/cues.js';
import { Rng } from '../src/util/rng.js';

/** Stream tokens through a detector; also record which tokens asked for a capture. */
function stream(tokens: readonly CueToken[], opts: CueOptions = {}): { hits: CueHit[]; captured: Set<number> } {
  const d = new CueDetector(opts);
  const hits: CueHit[] = [];
  const captured = new Set<number>();
  tokens.forEach((t, i) => {
    hits.push(...d.push(t));
    if (d.capturesLastToken) captured.add(i);
  });
  hits.push(...d.finish());
  return { hits, captured };
}

const at = (hits: CueHit[]) => hits.map((h) => [h.cue, h.tokenIndex]);

describe('cue detection', () => {
  it('finds a single-token cue at its token and confirms it with the next one', () => {
    const d = new CueDetector();
    expect(d.push('So')).toEqual([]);
    expect(d.push(' Wait')).toEqual([]);
    expect(d.capturesLastToken).toBe(true);
    expect(d.pending).toEqual({ cue: 'wait', tokenIndex: 1 });
    const hits = d.push(',');
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({ cue: 'wait', word: 'Wait', tokenIndex: 1, startTokenIndex: 1, confirmedAt: 2, eventIndex: 0 });
    expect(hits[0]!.charStart).toBe(3);
    expect(hits[0]!.charEnd).toBe(7);
    expect(d.capturesLastToken).toBe(false);
  });

  it('decides at once when the token itself shows the word ended', () => {
    const d = new CueDetector();
    const hits = d.push('Wait,');
    expect(at([...hits])).toEqual([['wait', 0]]);
    expect(hits[0]!.confirmedAt).toBe(0);
    expect(d.capturesLastToken).toBe(true);
  });

  it('does not take words that merely contain a cue', () => {
    for (const tokens of [
      [' await', ' the'],
      [' a', 'wait', ' the'],
      [' Wait', 'ing', ' for'],
      [' waiting'],
      [' Waits', '.'],
      [' wait', '_', 'x'],
      [' hm', ','],
      [' alternative', 's'],
      ['wait2'],
    ]) {
      expect(stream(tokens).hits, tokens.join('|')).toEqual([]);
    }
  });

  it('drops the speculative capture when the next token continues the word', () => {
    const { hits, captured } = stream([' Wait', 'ing', ' now']);
    expect(hits).toEqual([]);
    expect(captured).toEqual(new Set([0]));
  });

  it('handles punctuation, case and spacing variants', () => {
    expect(at(stream(['Wait', '...', ' ok']).hits)).toEqual([['wait', 0]]);
    expect(at(stream([' wait', ' ', 'no']).hits)).toEqual([['wait', 0]]);
    expect(at(stream(['WAIT', '!']).hits)).toEqual([['wait', 0]]);
    expect(at(stream(['\nHmm', '\n']).hits)).toEqual([['hmm', 0]]);
    expect(at(stream(['(wait)']).hits)).toEqual([['wait', 0]]);
    expect(at(stream(['x', '—', 'Alternatively', ':']).hits)).toEqual([['alternatively', 2]]);
  });

  it('accepts a drawn-out hmm and places it at the token with the last m', () => {
    const { hits, captured } = stream(['Hm', 'm', 'm', ', so']);
    expect(at(hits)).toEqual([['hmm', 2]]);
    expect(hits[0]!.word).toBe('Hmmm');
    expect(hits[0]!.startTokenIndex).toBe(0);
    expect(captured).toEqual(new Set([1, 2]));
  });

  it('finds a cue split over several tokens at the token that completes it', () => {
    const { hits, captured } = stream([' Altern', 'at', 'ively', ',', ' we']);
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({ cue: 'alternatively', tokenIndex: 2, startTokenIndex: 0, confirmedAt: 3 });
    expect(captured).toEqual(new Set([2]));
  });

  it('keeps a cue pending across empty tokens', () => {
    const { hits, captured } = stream([' Wait', '', '', ' what']);
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({ tokenIndex: 0, confirmedAt: 3 });
    expect(captured).toEqual(new Set([0]));
  });

  it('completes a cue at the end of the stream', () => {
    const d = new CueDetector();
    expect(d.push('Hmm')).toEqual([]);
    const hits = d.finish();
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({ cue: 'hmm', tokenIndex: 0, confirmedAt: 1 });
  });

  it('confirms a pending cue and finds another in the same push', () => {
    const d = new CueDetector();
    d.push(' Wait');
    const hits = d.push(', hmm');
    expect(at([...hits])).toEqual([['wait', 0]]);
    expect(d.capturesLastToken).toBe(true);
    expect(at([...d.push('.')])).toEqual([['hmm', 1]]);
  });

  it('keeps one event per token', () => {
    const { hits } = stream(['Hmm, wait', '.', ' wait', '.']);
    expect(at(hits)).toEqual([
      ['hmm', 0],
      ['wait', 2],
    ]);
    expect(hits.map((h) => h.eventIndex)).toEqual([0, 1]);
  });

  it('ignores cues after the end of thinking', () => {
    expect(at(stream(['Wait', ',', '</think>', ' Wait', ',']).hits)).toEqual([['wait', 0]]);
    // a marker split over tokens, and a cue right before it
    expect(at(stream(['ok wait', '</', 'think', '>', ' Hmm', '.']).hits)).toEqual([['wait', 0]]);
    expect(at(stream(['Hmm', '</think>Wait,']).hits)).toEqual([['hmm', 0]]);
    // a think-end token flagged by id (its text may be empty)
    const flagged: CueToken[] = [' wait', { text: '', endsThinking: true }, ' wait', '.'];
    const { hits } = stream(flagged);
    expect(at(hits)).toEqual([['wait', 0]]);
    expect(hits[0]!.confirmedAt).toBe(1);
    const d = new CueDetector();
    d.push('</think>');
    expect(d.thinkingEnded).toBe(true);
    d.push(' Wait');
    expect(d.capturesLastToken).toBe(false);
    expect(d.finish()).toEqual([]);
  });

  it('supports the paper variant and user lists', () => {
    const tokens = [' Alternatively', ',', ' wait', '.', ' Let', ' me', ' check', '.'];
    expect(at(stream(tokens).hits)).toEqual([
      ['alternatively', 0],
      ['wait', 2],
    ]);
    expect(at(stream(tokens, { cues: 'paper' }).hits)).toEqual([['wait', 2]]);
    expect(at(stream(tokens, { cues: ['Check', 'let'] }).hits)).toEqual([
      ['let', 4],
      ['check', 6],
    ]);
    expect(() => new CueDetector({ cues: ['let me'] })).toThrow(/single word/);
    expect(() => new CueDetector({ cues: [] })).toThrow(/empty/);
    expect(() => new CueDetector({ cues: 'nope' as never })).toThrow(/unknown cue variant/);
    expect(() => new CueDetector({ thinkEnd: 'END' })).toThrow(/non-word/);
  });

  it('differs from LYNX substring matching only where words contain a cue', () => {
    const tokens = [' Wait', ',', ' I', ' await', ' waiting', '.', ' Hmm', 'm', '.'];
    expect(findCueEventsLynx(tokens)).toEqual([
      { tokenIndex: 0, cue: 'wait' },
      { tokenIndex: 3, cue: 'wait' },
      { tokenIndex: 4, cue: 'wait' },
      { tokenIndex: 6, cue: 'hmm' },
    ]);
    expect(at(findCueEvents(tokens))).toEqual([
      ['wait', 0],
      ['hmm', 7],
    ]);
  });

  it('agrees with the offline finder on random token streams', () => {
    const pieces = [
      'wait', 'Wait', 'WAIT', 'await', 'waiting', 'hmm', 'Hmmm', 'hm', 'alternatively', 'Alternatively', 'altern',
      'so', 'x2', '_', ' ', ' ', '\n', ',', '.', '...', '!', '</think>', '<', '/', '>', 'think', 'é', '—', '',
    ];
    const rng = new Rng(7);
    let total = 0;
    for (let trial = 0; trial < 400; trial++) {
      let text = '';
      const n = rng.int(1, 30);
      for (let i = 0; i < n; i++) text += rng.pick(pieces);
      // random tokenization, including empty tokens
      const tokens: CueToken[] = [];
      let i = 0;
      while (i < text.length) {
        const len = rng.next() < 0.05 ? 0 : rng.int(1, 6);
        tokens.push(text.slice(i, i + len));
        i += len;
      }
      if (rng.next() < 0.2 && tokens.length > 2) {
        const k = rng.int(1, tokens.length - 1);
        tokens[k] = { text: tokens[k] as string, endsThinking: true };
      }
      const cues = rng.next() < 0.5 ? 'default' : 'paper';
      const { hits, captured } = stream(tokens, { cues });
      const offline = findCueEvents(tokens, { cues });
      expect(hits, JSON.stringify(tokens)).toEqual(offline);
      for (const h of hits) expect(captured.has(h.tokenIndex)).toBe(true);
      total += hits.length;
    }
    expect(total).toBeGreaterThan(100);
  });

  it('selects events and places the synthetic event like LYNX', () => {
    expect(selectEvents([1, 2, 3, 4, 5], { skipFirst: 1, maxEvents: 2 })).toEqual([2, 3]);
    expect(selectEvents([1, 2, 3], {})).toEqual([1, 2, 3]);
    expect(selectEvents([1, 2, 3], { skipFirst: 5 })).toEqual([]);
    // LYNX: pos_rel = max(1, int(0.7 * L)) (1-based)
    expect(syntheticEventIndex(10)).toBe(6);
    expect(syntheticEventIndex(1)).toBe(0);
    expect(syntheticEventIndex(0)).toBe(0);
    expect(syntheticEventIndex(1000)).toBe(699);
  });
});
