/**
 * The reference methods, DEER, Dynasor-CoT and the DEER-rollout adapter end to end on a tiny random model through the
 * real engine: token accounting adds up (every direct run's reported decoded and prefilled tokens equal what a counting
 * generator measured), probes never change the main trace (same seed, same tokens up to the exit), budgets stop
 * exactly where they should, and a sweep from one generation equals the direct runs.
 *
 * The model writes random bytes, so DEER's judge points are single letters here and Dynasor's answers come from an
 * injected extractor; the mechanics under test do not depend on what the text says.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaContext, LlamaModel } from '../src/engine/index.js';
import { CountingGenerator } from '../src/backends/counting.js';
import { LocalGenerator } from '../src/backends/local.js';
import { EXIT_CUES, exitCueText } from '../src/reasoning/forced-exit.js';
import { fullRollout, methodEnv, tokenBudget, type MethodEnv, type MethodOutcome } from '../src/reasoning/method.js';
import { deer, deerSweep, DEER_THINK_END } from '../src/reasoning/peers/deer.js';
import { dynasorCot, dynasorSweep } from '../src/reasoning/peers/dynasor.js';
import { applyAtDeerEvents, parseDeerRollouts, toDeerRows } from '../src/reasoning/lynx/deer-rollouts.js';
import { buildTinyGguf } from './helpers/engine-models.js';

let dir: string;
let model: LlamaModel;
let context: LlamaContext;
let prompt: number[];
/** Problems whose full rollout thinks through the whole 64-token budget (the tiny model sometimes stops early). */
let thinkers: { id: string; full: MethodOutcome }[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-peers-'));
  model = LlamaModel.load(buildTinyGguf(join(dir, 'tiny-qwen2.gguf'), { arch: 'qwen2', type: 'f32' }));
  // One thread: on a busy machine llama.cpp's spinning worker threads slow everything down. F32 KV cache and no flash
  // attention: results independent of batch composition, so runs compare token for token.
  context = new LlamaContext(model, { nCtx: 4096, nSeqMax: 8, nBatch: 256, threads: 1, kvType: 'f32', flashAttention: false });
  prompt = model.tokenize('<｜User｜>What is 2+2?<｜Assistant｜><think>\n');
  thinkers = [];
  for (let i = 0; thinkers.length < 3 && i < 40; i++) {
    const full = await solve(fullRollout(), `p${i}`);
    if (full.end === 'budget' && full.tokens.exitCue > 0) thinkers.push({ id: `p${i}`, full });
  }
});

afterAll(() => {
  context?.dispose();
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const env = (over: Partial<MethodEnv> = {}): MethodEnv => methodEnv({ context, maxTokens: 64, seed: 7, ...over });
/** What a counting generator measured for each direct run. */
const measured = new WeakMap<MethodOutcome, { decoded: number; prefilled: number }>();
const solve = async (m: { solve: (i: { problemId: string; promptTokens: number[] }, e: MethodEnv) => Promise<MethodOutcome> }, id: string, e = env()) => {
  const counter = new CountingGenerator(new LocalGenerator(context));
  const o = await m.solve({ problemId: id, promptTokens: prompt }, { ...e, generator: counter });
  measured.set(o, { decoded: counter.decoded, prefilled: counter.prefilled });
  return o;
};

/** Accounting every method shares: output adds up, and the reported work is the work done. */
function expectAccounting(o: MethodOutcome): void {
  const t = o.tokens;
  expect(t.total).toBe(t.reasoning + t.exitCue + t.answer);
  expect(Math.min(t.reasoning, t.exitCue, t.answer)).toBeGreaterThanOrEqual(0);
  const m = measured.get(o)!;
  expect({ decoded: t.decoded, prefilled: t.prefilled }).toEqual(m);
  expect(t.prefilled).toBeGreaterThanOrEqual(prompt.length);
}

function longThinkers(count: number): { id: string; full: MethodOutcome }[] {
  expect(thinkers.length).toBeGreaterThanOrEqual(count);
  for (const t of thinkers) expect(t.full.tokens.reasoning).toBe(64);
  return thinkers.slice(0, count);
}

const LETTERS = ['a', 'e', 'i', 'o', 'n', 'r', 't', 'h'];

describe('full rollout and token budget', () => {
  it('the full rollout is reproducible and its tokens add up', async () => {
    const a = await solve(fullRollout(), 'p1');
    const b = await solve(fullRollout(), 'p1');
    expect(b.traceTokens).toEqual(a.traceTokens);
    expectAccounting(a);
    expect(a.exit).toBeNull();
    if (a.end === 'budget' && a.tokens.exitCue > 0) {
      expect(a.tokens.reasoning).toBe(64);
      expect(a.answerText.startsWith(exitCueText('paper'))).toBe(true);
    }
  });

  it('a budget of B thinking tokens stops exactly at B, on the same tokens as the full rollout', async () => {
    const B = 17;
    for (const { id, full } of longThinkers(3)) {
      const o = await solve(tokenBudget(B), id);
      expect(o.end).toBe('exit');
      expect(o.tokens.reasoning).toBe(B);
      expect(o.exit).toEqual({ event: 0, position: B, cue: 'budget' });
      expect(o.traceTokens).toEqual(full.traceTokens.slice(0, B));
      expect(o.tokens.exitCue).toBe(model.tokenize(EXIT_CUES.paper, { addSpecial: false, parseSpecial: true }).length);
      expect(o.tokens.answer).toBeGreaterThan(0);
      expect(o.tokens.answer).toBeLessThanOrEqual(64);
      // The trace up to the budget and the answer were decoded; the prompt and the exit cue prefilled.
      expect(o.tokens.decoded).toBe(B + o.tokens.answer);
      expect(o.tokens.prefilled).toBe(prompt.length + o.tokens.exitCue);
      expectAccounting(o);
    }
  });

  it('budget forcing is an option: off, a trace out of tokens ends truncated and is graded as it is', async () => {
    for (const { id, full } of longThinkers(2)) {
      expectAccounting(full);
      const off = await solve(fullRollout(), id, env({ budgetForcing: false }));
      expect(off.end).toBe('budget');
      expect(off.traceTokens).toEqual(full.traceTokens);
      expect(off.tokens).toMatchObject({ reasoning: 64, exitCue: 0, answer: 0, total: 64, decoded: 64, prefilled: prompt.length });
      expect(off.answerText).toBe(off.text);
      expectAccounting(off);
      // On (the default), the same trace gets the exit cue and a decoded answer.
      expect(full.tokens.exitCue).toBeGreaterThan(0);
      expect(full.answerText.startsWith(exitCueText('paper'))).toBe(true);
    }
  });

  it("LYNX's exit accounting decodes past the box to the end of sequence or the answer budget, with the same answer", async () => {
    const B = 9;
    for (const { id } of longThinkers(3)) {
      const box = await solve(tokenBudget(B), id, env({ answerMaxTokens: 24 }));
      const lynx = await solve(tokenBudget(B), id, env({ answerMaxTokens: 24, exitAccounting: 'lynx' }));
      expect(lynx.answer).toBe(box.answer);
      expect(lynx.answerText).toBe(box.answerText);
      expect(lynx.tokens.answer).toBeGreaterThanOrEqual(box.tokens.answer);
      // An answer whose box never closed was decoded to the budget either way.
      if (box.answer === null) expect(lynx.tokens.answer).toBe(box.tokens.answer);
      expectAccounting(lynx);
    }
  });
});

describe('DEER', () => {
  const base = { cues: LETTERS, limitMargin: 0, thinkRatio: 1 };

  it('probing every judge point leaves the trace as it is without probes', async () => {
    for (const { id, full } of longThinkers(2)) {
      const o = await solve(deer({ ...base, threshold: Infinity, maxJudgeSteps: 1000 }), id);
      const trials = o.extra.trials as { position: number }[];
      expect(trials.length).toBeGreaterThan(1);
      expect(o.traceTokens).toEqual(full.traceTokens);
      // The response is the full rollout's; the trial answers are decoded work on top.
      const output = ({ reasoning, exitCue, answer, total }: MethodOutcome['tokens']) => ({ reasoning, exitCue, answer, total });
      expect(output(o.tokens)).toEqual(output(full.tokens));
      expect(o.answerText).toBe(full.answerText);
      expect(o.extra.trialTokens as number).toBeGreaterThan(0);
      expect(o.tokens.decoded + o.tokens.prefilled).toBe(full.tokens.decoded + full.tokens.prefilled + (o.extra.trialTokens as number));
      expectAccounting(o);
      // Judge points are in order and each holds a cue.
      const positions = trials.map((t) => t.position);
      expect(positions).toEqual([...positions].sort((a, b) => a - b));
    }
  });

  it('a confident trial exits before its judge point and reuses the trial answer', async () => {
    for (const { id, full } of longThinkers(3)) {
      const o = await solve(deer({ ...base, threshold: 0 }), id);
      expect(o.end).toBe('exit');
      const pos = o.exit!.position;
      // The first trial with a positive confidence exits (a one-token trial scores 0).
      const trials = o.extra.trials as { confidence: number }[];
      expect(trials.slice(0, -1).every((t) => t.confidence === 0)).toBe(true);
      expect(o.exit!.event).toBe(trials.length - 1);
      expect(o.exit!.score).toBeGreaterThan(0);
      expect(o.traceTokens).toEqual(full.traceTokens.slice(0, pos));
      expect(o.tokens.reasoning).toBe(pos);
      expect(o.tokens.answer).toBeGreaterThan(0);
      expect(o.tokens.answer).toBeLessThanOrEqual(20);
      // The exit cue is the DEER answer prompt (after the part of the cue token that precedes the cue).
      expect(o.answerText).toContain(EXIT_CUES.deer);
      expect(o.tokens.exitCue).toBeGreaterThanOrEqual(model.tokenize(EXIT_CUES.deer, { addSpecial: false, parseSpecial: true }).length);
      // The judge point's token holds a cue letter.
      const cueToken = model.detokenize([full.traceTokens[pos]!]);
      expect(LETTERS.some((l) => cueToken.includes(l))).toBe(true);
      expectAccounting(o);
    }
  });

  it('samples trial answers at temperature 1 as DEER does, each with a seed of its own; greedy on request', async () => {
    const [{ id }] = longThinkers(1);
    const opts = { ...base, threshold: Infinity, maxJudgeSteps: 8 };
    const a = await solve(deer(opts), id);
    const b = await solve(deer(opts), id);
    const greedy = await solve(deer({ ...opts, trialSampling: 'greedy' }), id);
    const conf = (o: MethodOutcome) => (o.extra.trials as { confidence: number }[]).map((t) => t.confidence);
    expect(conf(a)).toEqual(conf(b));
    expect(conf(a)).not.toEqual(conf(greedy));
    // Greedy tokens are each step's most likely: their mean probability is at least any sampled trial's... on average.
    const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;
    expect(mean(conf(greedy))).toBeGreaterThan(mean(conf(a)));
    expect(a.traceTokens).toEqual(greedy.traceTokens);
    expectAccounting(a);
    expectAccounting(greedy);
  });

  it('respects max_judge_steps and the think limit', async () => {
    const [{ id }] = longThinkers(1);
    const two = await solve(deer({ ...base, threshold: Infinity, maxJudgeSteps: 2 }), id);
    expect((two.extra.trials as unknown[]).length).toBe(2);
    // think_ratio 0.25 of 64 tokens: thinking stops at 16 whatever happens, then the harness's exit cue answers.
    const limited = await solve(deer({ ...base, threshold: Infinity, thinkRatio: 0.25 }), id);
    expect(limited.end).toBe('exit');
    expect(limited.tokens.reasoning).toBe(16);
    expect(limited.exit!.cue).toBe('think-limit');
    expect(limited.answerText.startsWith(exitCueText('paper'))).toBe(true);
    expectAccounting(limited);
    expectAccounting(two);
  });

  it("'conclude' ends as DEER's script does: close the thinking and let the model answer", async () => {
    const [{ id }] = longThinkers(1);
    const o = await solve(deer({ ...base, threshold: 0, finalAnswer: 'conclude' }), id);
    expect(o.end).toBe('exit');
    expect(o.answerText.startsWith(DEER_THINK_END)).toBe(true);
    expect(o.tokens.exitCue).toBe(model.tokenize(DEER_THINK_END, { addSpecial: false, parseSpecial: true }).length + (o.answerText.includes(EXIT_CUES.deer) ? model.tokenize(EXIT_CUES.deer, { addSpecial: false, parseSpecial: true }).length : 0));
    expectAccounting(o);
  });

  it('a threshold sweep from one generation equals the direct runs', async () => {
    const exits = new Set<number>();
    for (const finalAnswer of ['trial', 'conclude'] as const) {
      for (const { id } of longThinkers(2)) {
        // Thresholds just below each trial's confidence, so the sweep exits at every judge point in turn.
        const never = await solve(deer({ ...base, threshold: Infinity, maxJudgeSteps: 6 }), id);
        const confidences = (never.extra.trials as { confidence: number }[]).map((t) => t.confidence);
        const thresholds = [0, ...confidences.map((c) => c * (1 - 1e-9)), Infinity];
        const sweep = deerSweep(thresholds, { ...base, finalAnswer, maxJudgeSteps: 6 });
        const all = await sweep.solveAll({ problemId: id, promptTokens: prompt }, env());
        expect([...all.keys()]).toEqual(thresholds.map((t) => `threshold=${t}`));
        for (const t of thresholds) {
          const direct = await solve(deer({ ...base, finalAnswer, maxJudgeSteps: 6, threshold: t }), id);
          const swept = all.get(`threshold=${t}`)!;
          expect(swept.tokens).toEqual(direct.tokens);
          expect(swept.traceTokens).toEqual(direct.traceTokens);
          expect(swept.answerText).toBe(direct.answerText);
          expect(swept.exit).toEqual(direct.exit);
          expect(swept.extra.trials).toEqual(direct.extra.trials);
          exits.add(direct.exit!.position);
        }
      }
    }
    expect(exits.size).toBeGreaterThanOrEqual(4);
  });
});

describe('Dynasor-CoT', () => {
  const noHesitation = { uncertainWords: [] as string[] };

  it('probing every k tokens leaves the trace as it is without probes', async () => {
    for (const { id, full } of longThinkers(2)) {
      const o = await solve(dynasorCot({ interval: 8, agreement: Infinity }), id);
      expect(o.traceTokens).toEqual(full.traceTokens);
      const probes = o.extra.probes as { position: number; tokens: number }[];
      expect(probes.map((p) => p.position)).toEqual([8, 16, 24, 32, 40, 48, 56, 64]);
      // 20 tokens each, fewer when the probe ends at an end-of-generation token.
      const probeTokens = probes.reduce((a, p) => a + p.tokens, 0);
      expect(probes.every((p) => p.tokens >= 1 && p.tokens <= 20)).toBe(true);
      // The response is the full rollout's; the probes are decoded (their tokens) and prefilled (their cues) on top.
      expect(o.extra.probeTokens).toBe(probeTokens);
      expect(o.tokens).toMatchObject({ reasoning: full.tokens.reasoning, exitCue: full.tokens.exitCue, answer: full.tokens.answer, total: full.tokens.total });
      expect(o.tokens.decoded).toBe(full.tokens.decoded + probeTokens);
      expect(o.tokens.prefilled).toBe(full.tokens.prefilled + (o.extra.probeCueTokens as number));
      expectAccounting(o);
    }
  });

  it('exits after N agreeing certain probes with the probe as the answer; probe tokens counted as documented', async () => {
    const cueLen = model.tokenize(EXIT_CUES.dynasor, { addSpecial: false, parseSpecial: true }).length;
    for (const { id, full } of longThinkers(2)) {
      const o = await solve(dynasorCot({ interval: 8, agreement: 3, extractAnswer: () => '4', ...noHesitation }), id);
      expect(o.end).toBe('exit');
      expect(o.exit).toEqual({ event: 2, position: 24, cue: 'probe' });
      expect(o.traceTokens).toEqual(full.traceTokens.slice(0, 24));
      expect(o.answer).toBe('4');
      expect(o.answerText).toBe(`${EXIT_CUES.dynasor}4}\n\\]`);
      const [p0, p1, p2] = (o.extra.probes as { tokens: number }[]).map((p) => p.tokens);
      // Output: the trace to the last probe, its cue and its answer. Decoded: the trace and every probe.
      expect(o.tokens).toEqual({
        reasoning: 24,
        exitCue: cueLen,
        answer: p2,
        total: 24 + cueLen + p2!,
        decoded: 24 + p0! + p1! + p2!,
        prefilled: prompt.length + 3 * cueLen,
      });
      expectAccounting(o);
    }
  });

  it('a hesitation word in the probe text blocks the exit', async () => {
    const [{ id }] = longThinkers(1);
    // Every letter of the alphabet is a "hesitation word" here, and the tiny model writes letters often.
    const o = await solve(dynasorCot({ interval: 8, agreement: 1, extractAnswer: () => '4', uncertainWords: 'abcdefghijklmnopqrstuvwxyz'.split('') }), id);
    const probes = o.extra.probes as { certain: boolean }[];
    const firstCertain = probes.findIndex((p) => p.certain);
    if (firstCertain < 0) expect(o.exit).toBeNull();
    else expect(o.exit!.event).toBe(firstCertain);
  });

  it('an agreement sweep from one generation equals the direct runs', async () => {
    // An answer that depends on the probe text, so agreement comes and goes.
    const extractAnswer = (t: string) => String(t.length % 2);
    const agreements = [1, 2, 3, 100];
    const sweep = dynasorSweep(agreements, { interval: 8, extractAnswer, ...noHesitation });
    const exits = new Set<number | null>();
    for (const { id } of longThinkers(2)) {
      const all = await sweep.solveAll({ problemId: id, promptTokens: prompt }, env());
      for (const n of agreements) {
        const direct = await solve(dynasorCot({ interval: 8, agreement: n, extractAnswer, ...noHesitation }), id);
        const swept = all.get(`k=8,N=${n}`)!;
        expect(swept.tokens).toEqual(direct.tokens);
        expect(swept.traceTokens).toEqual(direct.traceTokens);
        expect(swept.exit).toEqual(direct.exit);
        expect(swept.answerText).toBe(direct.answerText);
        expect(swept.extra.probes).toEqual(direct.extra.probes);
        exits.add(direct.exit?.position ?? null);
      }
    }
    // Exits at different probes and runs without an exit were both compared.
    expect(exits.has(null)).toBe(true);
    expect(exits.size).toBeGreaterThanOrEqual(3);
  });
});

describe('LYNX on DEER rollouts', () => {
  it('exits at the chosen event with hidden states of that event token, and writes DEER rows', async () => {
    const responses = [
      'Let me see. Hmm, 2+2 is 4. Wait, is it? Yes.</think> The answer is \\boxed{4}.',
      'Two and two. Alternatively count: 4.</think> \\boxed{4}',
      'No cue words here.</think> \\boxed{4}',
    ];
    const rollouts = parseDeerRollouts(responses.map((r, i) => JSON.stringify({ question: `q${i}`, generated_responses: [r], gold_answer: '4' })).join('\n'));
    const seen: { cues: string[]; hidden: boolean }[] = [];
    const results = await applyAtDeerEvents(rollouts, {
      context,
      promptTokens: () => prompt,
      tapLayers: [1, 'final'],
      exitCue: 'paper',
      answerMaxTokens: 8,
      decideAtEvents: (events, ctx) => {
        seen.push({ cues: events.map((e) => e.cue), hidden: events.every((e) => e.hidden?.get(1)?.length === model.info.nEmbd) });
        return ctx.rollout.index === 0 ? 1 : null;
      },
    });
    // Events: whole words after the prompt, none after </think>; the third rollout has none (no decision asked).
    expect(seen).toEqual([
      { cues: ['hmm', 'wait'], hidden: true },
      { cues: ['alternatively'], hidden: true },
    ]);
    const [r0, r1, r2] = results;
    expect(r1!.exitEvent).toBeNull();
    expect(r1!.response).toBe(responses[1]);
    expect(r1!.tokens.total).toBe(r1!.baselineTokens);
    expect(r2!.events).toEqual([]);

    const ev = r0!.events[1]!;
    expect(ev.cue).toBe('wait');
    const responseTokens = model.tokenize(responses[0]!, { addSpecial: false, parseSpecial: true });
    expect(model.detokenize(responseTokens.slice(0, ev.tokenIndex + 1)).endsWith('Wait')).toBe(true);
    expect(r0!.tokens.reasoning).toBe(ev.tokenIndex);
    expect(r0!.tokens.exitCue).toBe(model.tokenize(EXIT_CUES.paper, { addSpecial: false, parseSpecial: true }).length);
    expect(r0!.tokens.total).toBe(r0!.tokens.reasoning + r0!.tokens.exitCue + r0!.tokens.answer);
    expect(r0!.response.startsWith(model.detokenize(responseTokens.slice(0, ev.tokenIndex)) + EXIT_CUES.paper)).toBe(true);

    // The captured hidden state is the event token's: prefill up to it and tap the last position.
    const seq = context.createSequence();
    await seq.append(prompt);
    const ref = await seq.append(responseTokens.slice(0, ev.tokenIndex + 1), { taps: { layers: [1, 'final'] } });
    seq.dispose();
    for (const layer of [1, 'final'] as const) {
      const a = ev.hidden!.get(layer)!;
      const b = ref.hidden.get(layer)!;
      let diff = 0;
      for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
      expect(diff).toBeLessThan(1e-5);
    }

    const rows = toDeerRows(results);
    expect(rows.map((r) => r.generated_responses[0])).toEqual([r0!.response, responses[1], responses[2]]);
    expect(rows[0]!.regular_end).toBe(1);
  });
});
