/**
 * The big/small control protocol on scripted models (test/helpers/scripted-generator.ts), where every token is known:
 * the small model's `<bigmodel>` hands over, the big model writes in chunks, every prefix of a chunk is tried and the
 * first one the small model would close ends the segment, the segment cap closes it otherwise; the big model never
 * reads the tags or the hint, each model reads only the other's new tokens, and after any cut or fork both caches
 * still hold exactly their copy of the text (a stale cache would make the scripts continue differently).
 */
import { describe, expect, it } from 'vitest';
import type { GeneratedToken } from '../src/engine/index.js';
import { ComposedGenerator } from '../src/reasoning/compose/composed-generator.js';
import type { ComposedSequence } from '../src/reasoning/compose/composed-sequence.js';
import { composeMethod } from '../src/reasoning/compose/compose-method.js';
import type { CompositionPolicy } from '../src/reasoning/compose/policy.js';
import { BIG_CLOSE, BIG_OPEN, tagVerdict } from '../src/reasoning/compose/protocol.js';
import { bigChance, chunkIsBig, randomSwitchPolicy } from '../src/reasoning/compose/random-switch.js';
import { bigOnlyPolicy, smallOnlyPolicy } from '../src/reasoning/compose/single-model.js';
import { logprobSubselectPolicy } from '../src/reasoning/compose/logprob-subselect.js';
import { specReasonPolicy } from '../src/reasoning/compose/specreason.js';
import { splitPolicy } from '../src/reasoning/compose/split.js';
import { methodEnv, type MethodOutcome } from '../src/reasoning/method.js';
import { lynxMethod, type LynxPolicy } from '../src/reasoning/lynx/online.js';
import { follow, ScriptedGenerator, ScriptedSequence, ScriptedVocab, type Script } from './helpers/scripted-generator.js';

const PROMPT_SMALL = 'Q: add?\nHINT\nA:';
const PROMPT_BIG = 'Q: add?\nA:';
const generatedPart = (text: string) => text.slice(text.indexOf('A:') + 2);

/** The small model: its own stretches of text, each ending in `<bigmodel>`, then the tail; inside a big segment it
 * writes `</bigmodel>` (greedily, character by character) right after a big text for which `closesAfter` holds. */
function smallScript(o: { before: string[]; closesAfter: (bigText: string) => boolean; tail: string }): Script {
  return (text) => {
    const g = generatedPart(text);
    const open = g.lastIndexOf(BIG_OPEN);
    if (open >= 0 && open > g.lastIndexOf(BIG_CLOSE)) {
      const body = g.slice(open + BIG_OPEN.length);
      for (let i = BIG_CLOSE.length - 1; i >= 1; i--) if (body.endsWith(BIG_CLOSE.slice(0, i))) return BIG_CLOSE[i]!;
      return o.closesAfter(body) ? '<' : 'x';
    }
    const closed = g.split(BIG_CLOSE).length - 1;
    const own = closed === 0 ? g : g.slice(g.lastIndexOf(BIG_CLOSE) + BIG_CLOSE.length);
    return follow(own, closed < o.before.length ? o.before[closed]! + BIG_OPEN : o.tail) ?? '';
  };
}

/** The big model counts: the digit after the last one, or 1. It never sees tags, so any tag in its text shows. */
const bigScript: Script = (text) => {
  const last = generatedPart(text).at(-1) ?? '';
  return /\d/.test(last) ? String((Number(last) + 1) % 10) : '1';
};

const smallVocab = new ScriptedVocab({ name: 'small' });
const otherVocab = new ScriptedVocab({ name: 'big-other', reversed: true, extra: ['12', 'ok', 'A:', 'Q: '] });

interface Composed {
  gen: ComposedGenerator;
  seq: ComposedSequence;
  small: ScriptedGenerator;
  big: ScriptedGenerator;
  text: string;
  tokens: GeneratedToken[];
  tapTexts: string[];
}

async function runComposed(
  policy: CompositionPolicy,
  smallModel: Script,
  o: { bigVocab?: ScriptedVocab; maxTokens?: number; taps?: boolean; seed?: number } = {},
): Promise<Composed> {
  const small = new ScriptedGenerator('small', smallVocab, smallModel);
  const bigVocab = o.bigVocab ?? smallVocab;
  const big = new ScriptedGenerator('big', bigVocab, bigScript);
  const prompts = { small: smallVocab.tokenize(PROMPT_SMALL), big: bigVocab.tokenize(PROMPT_BIG) };
  const gen = new ComposedGenerator({ small, big, policy, seed: o.seed ?? 1, prompts });
  const seq = gen.createSequence();
  await seq.append(prompts.small);
  const tokens: GeneratedToken[] = [];
  const tapTexts: string[] = [];
  for await (const t of seq.generate({
    maxTokens: o.maxTokens ?? 200,
    sampler: { temperature: 0.6, seed: o.seed ?? 1 },
    ...(o.taps ? { tapLayers: [0], tapWhen: (_t: number, text: string) => (tapTexts.push(text), true) } : {}),
  })) {
    tokens.push(t);
  }
  return { gen, seq, small, big, text: tokens.map((t) => t.text).join(''), tokens, tapTexts };
}

/** Both caches hold exactly their copy: the small's = the composed tokens it has read, the big's = its view's text. */
function expectInStep(seq: ComposedSequence, bigVocab: ScriptedVocab = smallVocab): void {
  const c = seq.caches();
  expect(c.small).toEqual(seq.tokens.slice(0, c.smallSynced));
  const bigText = bigVocab.detokenize(c.big);
  expect(bigText).toBe(seq.bigViewText(c.bigSynced));
  expect(bigText).not.toContain('<bigmodel');
  expect(bigText).not.toContain('HINT');
}

describe('split: SplitReason offloading', () => {
  it('hands over at <bigmodel> and back at the first prefix of a big chunk the small model would close', async () => {
    // Chunks of 4: "1234" (no prefix closes), "5678": "56" closes, and so would "5678"; the first one wins.
    const r = await runComposed(splitPolicy({ handBackEvery: 4 }), smallScript({ before: ['think '], closesAfter: (b) => /[68]$/.test(b), tail: ' ok</think>42' }));
    expect(r.text).toBe('think <bigmodel>123456</bigmodel> ok</think>42');
    expect(r.tokens.at(-1)!.stopped).toBe(true);
    // The big model wrote two chunks; "78" was dropped from both caches.
    expect(r.big.counts.generated).toBe(8);
    const s = r.gen.stats();
    expect(s.big.decoded).toBe(8);
    // Every prefix was tried: 4 one-token probes on chunk 1; on chunk 2, "5" and "567" fail after one token, "56" and
    // "5678" start the tag ("</bi", SplitReason's check, 4 tokens each); the whole tag is then appended.
    expect(s.small.probeTokens).toBe(4 + 1 + 4 + 1 + 4);
    expect(s.trace).toEqual({ small: 'think <bigmodel>'.length + '</bigmodel> ok'.length + 1 + 2, big: 6, input: 0 });
    expect(s.handoffs).toBe(1);
    expectInStep(r.seq);
    expect(smallVocab.detokenize(r.seq.caches().big)).toBe(PROMPT_BIG + 'think 123456');
    // What each model read without writing it: the big its prompt and "think " (never the tag), the small its prompt,
    // both big chunks and the closing tag it wrote greedily in a probe.
    expect(s.big.prefilled).toBe(PROMPT_BIG.length + 'think '.length);
    expect(s.small.prefilled).toBe(PROMPT_SMALL.length + 8 + BIG_CLOSE.length);
    // Probes are forks: none is left behind.
    expect(r.small.counts.liveSequences).toBe(1);
  });

  it('closes a segment that reaches the cap for the small model', async () => {
    const r = await runComposed(splitPolicy({ handBackEvery: 4, segmentCap: 6 }), smallScript({ before: ['think '], closesAfter: () => false, tail: ' ok</think>42' }));
    expect(r.text).toBe('think <bigmodel>123456</bigmodel> ok</think>42');
    expect(r.gen.stats().big.decoded).toBe(6);
    // Chunks of 4 and then 2 (the cap's remainder), each prefix probed once.
    expect(r.gen.stats().small.probeTokens).toBe(4 + 2);
    expectInStep(r.seq);
  });

  const twoSegments = () => smallScript({ before: ['a ', ' b '], closesAfter: (b) => b.endsWith('3'), tail: ' ok</think>42' });
  const twoSegmentsText = 'a <bigmodel>123</bigmodel> b <bigmodel>123</bigmodel> ok</think>42';

  it('the big model reads only the small model’s new text, without tags or hint', async () => {
    const r = await runComposed(splitPolicy({ handBackEvery: 2 }), twoSegments());
    expect(r.text).toBe(twoSegmentsText);
    const s = r.gen.stats();
    expect(s.handoffs).toBe(2);
    expect(smallVocab.detokenize(r.seq.caches().big)).toBe(PROMPT_BIG + 'a 123 b 123');
    // Prompt once, then "a " and " b ": nothing is read twice.
    expect(s.big.prefilled).toBe(PROMPT_BIG.length + 2 + 3);
    expect(s.big.decoded).toBe(8);
    expectInStep(r.seq);
  });

  it('passes text when the vocabularies differ, with the same trace', async () => {
    const r = await runComposed(splitPolicy({ handBackEvery: 2 }), twoSegments(), { bigVocab: otherVocab });
    expect(r.gen.sameVocab).toBe(false);
    expect(r.text).toBe(twoSegmentsText);
    expect(otherVocab.detokenize(r.seq.caches().big)).toBe(PROMPT_BIG + 'a 123 b 123');
    expectInStep(r.seq, otherVocab);
  });

  it('taps the small model’s hidden state of every token, big ones and tags included, in order', async () => {
    const r = await runComposed(splitPolicy({ handBackEvery: 2 }), twoSegments(), { taps: true });
    expect(r.text).toBe(twoSegmentsText);
    const yielded = r.tokens.filter((t) => !t.stopped);
    yielded.forEach((t, i) => {
      // The scripted small model's state at position p is p: the tap came from this very token's position.
      expect(t.hidden?.get(0)).toEqual(ScriptedSequence.stateAt(PROMPT_SMALL.length + i));
    });
    // tapWhen was called once per token with the text of the whole generate call so far (as LYNX's cue detector reads it).
    expect(r.tapTexts).toEqual(yielded.map((_, i) => yielded.slice(0, i + 1).map((t) => t.text).join('')));
  });

  it('a fork cut anywhere continues exactly as the uncut trace (both caches in step after truncate)', async () => {
    for (const bigVocab of [smallVocab, otherVocab]) {
      const r = await runComposed(splitPolicy({ handBackEvery: 2 }), twoSegments(), { bigVocab });
      const full = r.seq.tokens;
      const cuts = [2, 'a <bigmodel>1'.length, 'a <bigmodel>12'.length, 'a <bigmodel>123</bigmodel>'.length, 'a <bigmodel>123</bigmodel> b <bigmodel>12'.length];
      for (const cut of cuts) {
        const f = r.seq.fork();
        f.truncate(PROMPT_SMALL.length + cut);
        expectInStep(f, bigVocab);
        let text = '';
        for await (const t of f.generate({ maxTokens: 200, sampler: { temperature: 0 } })) text += t.text;
        expect(twoSegmentsText.slice(0, cut) + text).toBe(twoSegmentsText);
        expect(f.tokens).toEqual(full);
        expectInStep(f, bigVocab);
        f.dispose();
      }
    }
  });

  it('stops at the budget inside a big segment and leaves the caches in step', async () => {
    const r = await runComposed(splitPolicy({ handBackEvery: 4 }), smallScript({ before: ['think '], closesAfter: () => false, tail: '' }), { maxTokens: 20 });
    expect(r.tokens).toHaveLength(20);
    expect(r.text).toBe('think <bigmodel>1234');
    expectInStep(r.seq);
  });

  it('tagVerdict: whitespace before the tag is allowed, anything else is not', () => {
    expect(tagVerdict('', BIG_CLOSE)).toBe('undecided');
    expect(tagVerdict('\n</big', BIG_CLOSE)).toBe('undecided');
    expect(tagVerdict(' </bigmodel>', BIG_CLOSE)).toBe('closes');
    expect(tagVerdict('</bigmodel>\nSo', BIG_CLOSE)).toBe('closes');
    expect(tagVerdict('x</bigmodel>', BIG_CLOSE)).toBe('no');
    expect(tagVerdict('</bx', BIG_CLOSE)).toBe('no');
  });
});

describe('baselines', () => {
  const plain = smallScript({ before: [], closesAfter: () => false, tail: 'plain text ok</think>42' });

  it('small only never touches the big model; big only writes everything', async () => {
    const s = await runComposed(smallOnlyPolicy(), plain);
    expect(s.text).toBe('plain text ok</think>42');
    expect(s.big.counts).toMatchObject({ appended: 0, generated: 0, liveSequences: 0 });
    expect(s.gen.stats().offloadShare).toBe(0);
    const b = await runComposed(bigOnlyPolicy(), plain, { maxTokens: 12 });
    expect(b.text).toBe('123456789012');
    expect(b.small.counts).toMatchObject({ appended: 0, generated: 0 });
    expect(b.gen.stats()).toMatchObject({ offloadShare: 1, handoffs: 1 });
  });

  it('random switch gives each chunk to one model by a seeded coin, at its ratio', async () => {
    const chunk = 4;
    const policy = randomSwitchPolicy({ switchRatio: 3, switchChunk: chunk });
    let big = 0;
    let chunks = 0;
    for (let seed = 0; seed < 60; seed++) {
      const r = await runComposed(policy, () => 'x', { maxTokens: 40, seed });
      const authors = r.seq.generatedAuthors();
      for (let k = 0; k < authors.length; k += chunk) {
        const part = authors.slice(k, k + chunk);
        // One author per chunk, the one its coin names.
        expect(new Set(part).size).toBe(1);
        expect(part[0]).toBe(chunkIsBig(seed, k / chunk, 3) ? 'big' : 'small');
        chunks++;
        if (part[0] === 'big') big++;
      }
      expectInStep(r.seq);
    }
    expect(chunks).toBe(600);
    // 600 chunks at P(big) = 0.25: the share is within 4 standard deviations (0.018 each).
    expect(Math.abs(big / chunks - bigChance(3))).toBeLessThan(0.07);
  });

  it('coins: the share of big chunks follows 1/(ratio+1) over many chunks', () => {
    for (const ratio of [0, 1, 3, 9]) {
      let big = 0;
      for (let i = 0; i < 20000; i++) if (chunkIsBig(7, i, ratio)) big++;
      expect(big / 20000).toBeCloseTo(bigChance(ratio), 1);
    }
  });
});

describe('logprob subselect', () => {
  it('keeps the draft the big model finds likeliest, round by round, then the big model writes on', async () => {
    // Candidates are forks 1-4 of the small sequence; each drafts its own letter. The big model likes "b".
    const letters: Record<number, string> = { 1: 'x', 2: 'b', 3: 'y', 4: 'z' };
    const small = new ScriptedGenerator('small', smallVocab, (_text, seq) => letters[seq] ?? 'q');
    const big = new ScriptedGenerator('big', smallVocab, () => 'b');
    const gen = new ComposedGenerator({ small, big, policy: logprobSubselectPolicy({ candidates: 4, draftTokens: 3, decay: 2, bigTokens: 2 }), seed: 1 });
    const seq = gen.createSequence();
    await seq.append(smallVocab.tokenize(PROMPT_BIG));
    let text = '';
    for await (const t of seq.generate({ maxTokens: 14, sampler: { temperature: 0.6, seed: 3 } })) text += t.text;
    // Round 1: "bbb" wins (kept with one other, each extended by "bb"); round 2: the "b" candidate drafts "bbb" again.
    expect(text).toBe('b'.repeat(14));
    const s = gen.stats();
    expect(s.trace).toEqual({ small: 6, big: 8, input: 0 });
    expect(s.small.decoded).toBe(4 * 3 + 2 * 3);
    // Every candidate was scored token by token from its cached prefix (one re-decode each), then extended.
    expect(s.big.prefilled).toBe(PROMPT_BIG.length + 4 * (1 + 3) + 2 * (1 + 3));
    expectInStep(seq);
    // Losing candidates are gone.
    expect(small.counts.liveSequences).toBe(1);
    expect(big.counts.liveSequences).toBe(1);
  });
});

describe('specreason', () => {
  it('keeps the small model’s steps the big model scores high and has the big model rewrite the others', async () => {
    const JUDGE = '\nScore: ';
    const steps = ['one ok.\n\n', 'two bad.\n\n', 'three ok.</think>42'];
    const small = new ScriptedGenerator('small', smallVocab, (text) => {
      const g = generatedPart(text);
      const k = g.split('\n\n').length - 1;
      const at = g.lastIndexOf('\n\n');
      return follow(at < 0 ? g : g.slice(at + 2), steps[k] ?? '') ?? '';
    });
    const big = new ScriptedGenerator('big', smallVocab, (text) => {
      if (text.endsWith(JUDGE)) return text.slice(0, -JUDGE.length).split('\n\n').at(-2)!.includes('bad') ? '2' : '8';
      const g = generatedPart(text);
      return follow(g.slice(g.lastIndexOf('\n\n') + 2), 'big fix.\n\n') ?? '';
    });
    const gen = new ComposedGenerator({ small, big, policy: specReasonPolicy({ judge: JUDGE }), seed: 1 });
    const seq = gen.createSequence();
    await seq.append(smallVocab.tokenize(PROMPT_BIG));
    let text = '';
    for await (const t of seq.generate({ maxTokens: 200, sampler: { temperature: 0.6, seed: 1 } })) text += t.text;
    expect(text).toBe('one ok.\n\nbig fix.\n\nthree ok.</think>42');
    const s = gen.stats();
    expect(s.steps).toEqual({ accepted: 2, rejected: 1 });
    expect(s.trace.big).toBe('big fix.\n\n'.length);
    // The rejected draft was work too; each judgement read the step and the prompt on a fork of the big cache.
    expect(s.small.decoded).toBe('one ok.\n\n'.length + 'two bad.\n\n'.length + 'three ok.</think>42'.length - '</think>'.length + 1 + 1);
    // Three one-token scores and the rewritten step (which ends the turn: no stop token).
    expect(s.big.decoded).toBe(3 + 'big fix.\n\n'.length);
    expectInStep(seq);
    expect(big.counts.liveSequences).toBe(1);
  });
});

describe('LYNX on top of the composition', () => {
  it('scores cue events on the small model’s hidden states of the composed trace and exits there', async () => {
    const before = smallScript({ before: ['First '], closesAfter: (b) => b.endsWith('3'), tail: ' so 123. Wait, check 123 again.</think> Final Answer: \\boxed{42}' });
    const small = new ScriptedGenerator('small', smallVocab, (text, seq) => {
      const g = generatedPart(text);
      const boxed = g.lastIndexOf('\\boxed{');
      return boxed >= 0 ? (follow(g.slice(boxed + 7), '42}') ?? '') : before(text, seq);
    });
    const big = new ScriptedGenerator('big', smallVocab, bigScript);
    const scored: number[] = [];
    const policy = {
      probe: { nFeatures: 4, predictOne: (x: Float32Array) => (scored.push(x[0]!), 0.9) },
      hiddenStateLayers: [1],
      rule: { rule: 'crc', delta: 0.1, threshold: 0.5 },
    } as unknown as LynxPolicy;
    const method = composeMethod(splitPolicy({ handBackEvery: 2 }), lynxMethod(policy)) as { name: string; requiresSmall: unknown; solve: (i: never, e: never) => Promise<MethodOutcome> };
    expect(method.name).toBe('split+lynx-crc');
    // The probe reads the small model: hidden states and forks are asked of it.
    expect(method.requiresSmall).toEqual(['fork', 'hiddenStates']);
    const o = await method.solve(
      { problemId: 'p', promptTokens: smallVocab.tokenize(PROMPT_SMALL) } as never,
      methodEnv({ generator: big, small, maxTokens: 200 }) as never,
    );
    // LYNX cuts before the token that completes the cue word (here the letter-level "t" of "Wait").
    const kept = 'First <bigmodel>123</bigmodel> so 123. Wai';
    expect(o.text).toBe(kept);
    expect(o.exit).toMatchObject({ event: 0, position: kept.length });
    expect(o.answer).toBe('42');
    // The event's features are the small model's state at that token, after the big model's tokens.
    expect(scored).toEqual([PROMPT_SMALL.length + kept.length]);
    expect((o.extra.compose as { trace: { big: number } }).trace.big).toBe(3);
  });
});

describe('composeMethod', () => {
  it('runs a method on the composed trace and records what each model did', async () => {
    const small = new ScriptedGenerator('small', smallVocab, smallScript({ before: ['a '], closesAfter: (b) => b.endsWith('3'), tail: ' ok</think> Final Answer: \\boxed{42}' }));
    const big = new ScriptedGenerator('big', smallVocab, bigScript);
    const method = composeMethod(splitPolicy({ handBackEvery: 2 }));
    expect(method.name).toBe('split');
    expect(method.requiresSmall).toEqual(['fork']);
    const seen: { hint: string | undefined; vocab: string }[] = [];
    const o = (await (method as { solve: (i: never, e: never) => Promise<MethodOutcome> }).solve(
      {
        problemId: 'p1',
        promptTokens: smallVocab.tokenize(PROMPT_BIG),
        renderPrompt: (vocab: ScriptedVocab, opts?: { hint?: string }) => {
          seen.push({ hint: opts?.hint, vocab: vocab.info.path });
          return vocab.tokenize(opts?.hint ? PROMPT_SMALL : PROMPT_BIG);
        },
      } as never,
      methodEnv({ generator: big, small, maxTokens: 200, sampler: { temperature: 0.6, topP: 0.95 } }) as never,
    ))!;
    // The small's prompt carries SplitReason's hint line, the big's does not.
    expect(seen).toEqual([
      { hint: undefined, vocab: 'small' },
      { hint: expect.stringContaining('<bigmodel>...</bigmodel>'), vocab: 'small' },
    ]);
    expect(o.text).toBe('a <bigmodel>123</bigmodel> ok</think> Final Answer: \\boxed{42}');
    expect(o.end).toBe('natural');
    const c = o.extra.compose as ReturnType<ComposedGenerator['stats']>;
    expect(c.mode).toBe('split');
    expect(c.trace.big).toBe(3);
    expect(c.offloadShare).toBeCloseTo(3 / o.traceTokens.length, 10);
    expect(c.handoffs).toBe(1);
    expect(c.big.prefilled).toBe(PROMPT_BIG.length + 2);
  });

  it('refuses without a small model, before any work', async () => {
    const big = new ScriptedGenerator('big', smallVocab, bigScript);
    const m = composeMethod(splitPolicy()) as { solve: (i: never, e: never) => Promise<unknown> };
    await expect(m.solve({ problemId: 'p', promptTokens: [1] } as never, methodEnv({ generator: big }) as never)).rejects.toThrow(/--small SMALL/);
  });
});
