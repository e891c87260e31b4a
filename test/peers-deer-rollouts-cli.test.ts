/**
 * `lynx deer-rollouts` end to end on a tiny random qwen2 model (byte-level vocabulary, R1 chat template), a random
 * probe whose cue list is wait / check / hmm (not LYNX's default: `alternatively` is no event here, `check` is), and
 * a hand-made LYNX rule that exits when p > t.
 *
 * The test recomputes every decision itself, independently of the command: it renders the prompt by hand, finds the
 * whole-word cue events of the thinking with a regex, prefills prompt + response through the engine with taps at
 * those tokens, scores the features with the probe, and takes the first event above t. t is chosen from these scores
 * so that one rollout with events is kept and the others exit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LlamaContext, LlamaModel } from '../src/engine/index.js';
import { ZST_INSTRUCTION } from '../src/tasks/prompts.js';
import { EXIT_CUES } from '../src/reasoning/forced-exit.js';
import { CONFORMAL_SCHEMA, type LynxRule } from '../src/reasoning/calibration/conformal.js';
import { ruleFileName } from '../src/reasoning/calibration/rule-files.js';
import { initLayers, loadProbe, Probe, saveProbe } from '../src/reasoning/lynx/probe/probe.js';
import { renderChatForModel } from '../src/reasoning/prompt-tokens.js';
import type { DeerRolloutRecord, DeerRolloutsSummary } from '../src/pipeline/deer-rollouts.js';
import type { DeerRolloutRow } from '../src/reasoning/lynx/deer-rollouts.js';
import { writeJsonAtomic } from '../src/util/fs.js';
import { Rng } from '../src/util/rng.js';
import { buildTinyGguf } from './helpers/engine-models.js';

const ROOT = resolve(__dirname, '..');
const CLI = [join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), join(ROOT, 'src', 'cli', 'main.ts')];
const N_EMBD = 64;
/** Hugging Face hidden-state indices: block outputs 1 and 3 (engine taps). */
const LAYERS = [2, 4];
const TAPS = [1, 3];
const CUES = ['wait', 'check', 'hmm+'];
const CUE_RE = /\b(wait|check|hm{2,})\b/gi;
const ANSWER_MAX = 8;

/** Long enough that cutting at any event of the text before it saves more than the exit cue + answer cost. */
const TAIL =
  'Now I recompute everything once more from the start to be completely sure about the result, step by step. '.repeat(3);

interface InputRow {
  question?: string;
  problem?: string;
  generated_responses?: string[];
  generated_response?: string;
  gold_answer?: string;
  too_long?: number;
  regular_end?: number;
}

const INPUT: InputRow[] = [
  { question: 'What is 2+3?', gold_answer: '5', generated_responses: [`2+3 = 5. So the answer is 5.\n\nWait, let me check. 2+3 is 5 indeed. Hmm, fine.\n\n${TAIL}</think>\n\nThe answer is \\boxed{5}.`] },
  { question: 'What is 7*6?', gold_answer: '42', generated_responses: [`7*6 = 42. Hmmm, 7*6 is 42. Wait, yes.\n\nLet me check again: 42.\n\n${TAIL}</think>\n\n\\boxed{42}`] },
  { question: 'What is 10-4?', gold_answer: '6', too_long: 1, regular_end: 0, generated_responses: [`10-4 = 7. Wait, no: 10-4 = 6. Check: 6+4 = 10.\n\n${TAIL}</think>\n\n\\boxed{6}`] },
  { question: 'What is 9+9?', gold_answer: '18', generated_responses: [`9+9 = 19? Hmm. Wait, 9+9 = 18. I check 18-9 = 9. Wait, fine.\n\n${TAIL}</think>\n\n\\boxed{19}`] },
  { question: 'What is 3*3?', gold_answer: '9', generated_responses: [`3*3 = 9. Let me check that. Wait, it is 9.\n\n${TAIL}</think>\n\n\\boxed{9}`] },
  { question: 'What is 8/2?', gold_answer: '4', generated_responses: [`8/2 = 4. Hmm, and 4*2 = 8. Wait, so 4. Check done.\n\n${TAIL}</think>\n\n\\boxed{4}`] },
  // No cue word of the probe's list ('alternatively' is LYNX's default cue, not this probe's; 'Waiting' is no whole word
  // 'wait'; the 'Wait' after </think> is no event).
  { question: 'What is 1+1?', gold_answer: '2', regular_end: 1, generated_responses: [`Alternatively, 1+1 = 2. Waiting is over.</think>\n\nWait: \\boxed{2}`] },
  // LYNX's other field names, and no gold answer.
  { problem: 'What is 5+5?', generated_response: `5+5 = 10. Wait, 10. Check: yes.\n\n${TAIL}</think>\n\n\\boxed{10}` },
];

const question = (r: InputRow) => (r.question ?? r.problem)!;
const stored = (r: InputRow) => (r.generated_responses?.[0] ?? r.generated_response)!;

let dir: string;
let modelPath: string;
let exp: string;
let inPath: string;
/** Per input row: stored response tokens, the events (token index of the cue's last letter) and their scores. */
let reference: { tokens: number[]; events: { word: string; tokenIndex: number; score: number }[] }[];
let threshold: number;
let model: LlamaModel;

function lynx(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...CLI, ...args], { encoding: 'utf8', env: { ...process.env, LYNX_THREADS: '1', NO_COLOR: '1' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const tokenize = (s: string) => model.tokenize(s, { addSpecial: false, parseSpecial: true });

function writeRule(root: string, t: number, delta = 0.1): void {
  // Prediction set {1} iff 1 - p <= qPos (always) and not 1 - (1 - p) <= qNeg, i.e. p > qNeg.
  const rule: LynxRule = {
    schema: CONFORMAL_SCHEMA,
    rule: 'lynx',
    delta,
    qPos: 1,
    qNeg: t,
    nCal: 200,
    nPos: 100,
    nNeg: 100,
    clipped: { pos: false, neg: false },
    valid: true,
    neededNeg: 9,
    refused: false,
    threshold: t,
    guarantee: 'test rule',
  };
  mkdirSync(join(root, 'conformal'), { recursive: true });
  writeJsonAtomic(join(root, 'conformal', ruleFileName('lynx', delta)), rule);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-deer-cli-'));
  modelPath = buildTinyGguf(join(dir, 'tiny-qwen2.gguf'), { arch: 'qwen2', type: 'f32', nEmbd: N_EMBD, nLayer: 4, seed: 5 });
  model = LlamaModel.load(modelPath);
  exp = join(dir, 'exp');
  const nFeatures = LAYERS.length * N_EMBD;
  const probe = new Probe(nFeatures, new Float32Array(nFeatures), new Float32Array(nFeatures).fill(1), initLayers([nFeatures, 16, 1], new Rng(3)));
  saveProbe(join(exp, 'probe'), probe, { hiddenStateLayers: LAYERS, cues: CUES });
  inPath = join(dir, 'deer.jsonl');
  writeFileSync(inPath, INPUT.map((r) => JSON.stringify(r)).join('\n') + '\n');

  // The reference: the prompt as the tiny chat template renders it, events by regex, hidden states from one prefill.
  const context = new LlamaContext(model, { nCtx: 2048, nSeqMax: 2, threads: 1, kvType: 'f32', flashAttention: false });
  reference = [];
  for (const row of INPUT) {
    const prompt = tokenize(`<｜begin▁of▁sentence｜><｜User｜>${question(row)}\n${ZST_INSTRUCTION}<｜Assistant｜><think>\n`);
    const response = stored(row);
    const tokens = tokenize(response);
    const thinking = response.slice(0, response.indexOf('</think>'));
    const prefixLength = tokens.map((_, i) => model.detokenize(tokens.slice(0, i + 1)).length);
    const events = [...thinking.matchAll(CUE_RE)].map((m) => ({
      word: m[0],
      tokenIndex: prefixLength.findIndex((n) => n >= m.index! + m[0].length),
      score: NaN,
    }));
    if (events.length > 0) {
      const seq = context.createSequence();
      await seq.append(prompt);
      const r = await seq.append(tokens, { taps: { layers: TAPS, positions: events.map((e) => e.tokenIndex) } });
      seq.dispose();
      events.forEach((e, i) => {
        const f = new Float32Array(nFeatures);
        TAPS.forEach((l, k) => f.set(r.hidden.get(l)!.subarray(i * N_EMBD, (i + 1) * N_EMBD), k * N_EMBD));
        e.score = probe.predictOne(f);
      });
    }
    reference.push({ tokens, events });
  }
  context.dispose();
  // A threshold between the lowest two of the rollouts' best scores: one rollout with events is kept, the others exit
  // (several with more than one event above the threshold, so the first one must be taken).
  const best = reference.filter((r) => r.events.length > 0).map((r) => Math.max(...r.events.map((e) => e.score))).sort((a, b) => a - b);
  threshold = (best[0]! + best[1]!) / 2;
  writeRule(exp, threshold);
});

afterAll(() => {
  model?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('lynx deer-rollouts', () => {
  it('applies LYNX at the cue events of stored rollouts and writes DEER rows; decisions, tokens and accuracy check out', () => {
    const out = join(dir, 'out.jsonl');
    const metricsPath = join(dir, 'out.metrics.json');
    const r = lynx(['deer-rollouts', '-m', modelPath, '--probe', exp, '--in', inPath, '-o', out, '--answer-max-tokens', String(ANSWER_MAX), '--metrics', metricsPath, '--json', '--prompt-style', 'zst']);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as DeerRolloutsSummary;
    const metrics = JSON.parse(readFileSync(metricsPath, 'utf8')) as { summary: DeerRolloutsSummary; rollouts: DeerRolloutRecord[] };
    expect(metrics.summary).toEqual(summary);
    const rows = readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as DeerRolloutRow);
    expect(rows).toHaveLength(INPUT.length);
    expect(metrics.rollouts).toHaveLength(INPUT.length);

    const cueTokens = tokenize(EXIT_CUES.paper).length;
    let exits = 0;
    let keptWithEvents = 0;
    INPUT.forEach((input, i) => {
      const row = rows[i]!;
      const rec = metrics.rollouts[i]!;
      const ref = reference[i]!;
      // DEER's format.
      expect(Object.keys(row).sort()).toEqual(['generated_responses', 'gold_answer', 'high_prob', 'question', 'regular_end', 'rep_end', 'thinking_steps', 'too_long']);
      expect(row.question).toBe(question(input));
      expect(row.gold_answer).toBe(input.gold_answer ?? '');
      expect(row.generated_responses).toHaveLength(1);

      // The same events, scored as the reference scores them, and the rule's first exit.
      expect(rec.events.map((e) => [e.word, e.tokenIndex])).toEqual(ref.events.map((e) => [e.word, e.tokenIndex]));
      const expectedExit = ref.events.findIndex((e) => e.score > threshold);
      expect(rec.exitEvent).toBe(expectedExit < 0 ? null : expectedExit);
      rec.events.forEach((e, k) => {
        expect(Math.abs(e.score - ref.events[k]!.score)).toBeLessThan(1e-4);
        expect(e.exit).toBe(k === expectedExit);
      });
      expect(rec.baselineTokens).toBe(ref.tokens.length);

      const response = row.generated_responses[0]!;
      if (rec.exitEvent === null) {
        if (ref.events.length > 0) keptWithEvents++;
        expect(response).toBe(stored(input));
        expect(rec.tokens).toMatchObject({ reasoning: ref.tokens.length, exitCue: 0, answer: 0, total: ref.tokens.length, decoded: ref.tokens.length });
        // A kept row keeps its flags (DEER's defaults where it had none).
        expect(row.too_long).toBe(input.too_long ?? 0);
        expect(row.regular_end).toBe(input.regular_end ?? 1);
      } else {
        exits++;
        const cut = ref.events[rec.exitEvent]!.tokenIndex;
        const head = model.detokenize(ref.tokens.slice(0, cut)) + EXIT_CUES.paper;
        // The kept reasoning (cut before the cue token), the exit cue, then the decoded answer.
        expect(response.startsWith(head)).toBe(true);
        expect(stored(input).startsWith(model.detokenize(ref.tokens.slice(0, cut)))).toBe(true);
        expect(rec.tokens.reasoning).toBe(cut);
        expect(rec.tokens.exitCue).toBe(cueTokens);
        expect(rec.tokens.answer).toBeGreaterThan(0);
        expect(rec.tokens.answer).toBeLessThanOrEqual(ANSWER_MAX);
        expect(rec.tokens.total).toBe(cut + cueTokens + rec.tokens.answer);
        // As online LYNX would have worked: the kept reasoning and the answer decoded, the prompt and the cue prefilled.
        expect(rec.tokens.decoded).toBe(cut + rec.tokens.answer);
        expect(rec.tokens.prefilled - cueTokens).toBeGreaterThan(0);
        expect(rec.tokens.total).toBeLessThan(rec.baselineTokens);
        expect(response.length).toBeLessThan(stored(input).length);
        expect(response.length).toBeGreaterThan(head.length);
        expect([row.too_long, row.thinking_steps, row.rep_end, row.high_prob, row.regular_end]).toEqual([0, 0, 0, 0, 1]);
      }
    });
    // Every branch was exercised: kept with events, an exit at a later event than the first, and an exit with a later
    // event above the threshold too (the decision is the first one, as online).
    expect(exits).toBeGreaterThan(0);
    expect(keptWithEvents).toBeGreaterThan(0);
    expect(metrics.rollouts.some((x) => x.exitEvent !== null && x.exitEvent > 0)).toBe(true);
    expect(metrics.rollouts.some((x) => x.exitEvent !== null && x.events.slice(x.exitEvent + 1).some((e) => e.score > threshold))).toBe(true);

    // The summary agrees with the rows.
    const n = INPUT.length;
    expect(summary.rollouts).toBe(n);
    expect(summary.rule).toBe('lynx');
    expect(summary.delta).toBe(0.1);
    expect(summary.exits).toBe(exits);
    expect(summary.exitRate).toBeCloseTo(exits / n, 12);
    expect(summary.withEvents).toBe(reference.filter((x) => x.events.length > 0).length);
    expect(summary.baselineAvgTokens).toBeCloseTo(reference.reduce((a, x) => a + x.tokens.length, 0) / n, 9);
    expect(summary.earlyExitAvgTokens).toBeCloseTo(metrics.rollouts.reduce((a, x) => a + x.tokens.total, 0) / n, 9);
    expect(summary.earlyExitAvgTokens).toBeLessThan(summary.baselineAvgTokens);
    expect(summary.tokenSavings).toBeCloseTo(1 - summary.earlyExitAvgTokens / summary.baselineAvgTokens, 12);
    // Accuracy over the rows with a gold answer: the stored responses are right except 9+9 = 19.
    expect(summary.graded).toBe(n - 1);
    expect(summary.baselineAccuracy).toBeCloseTo(6 / 7, 12);
    const graded = metrics.rollouts.filter((x) => x.gold !== '');
    expect(graded.every((x) => typeof x.baselineCorrect === 'boolean' && typeof x.earlyExitCorrect === 'boolean')).toBe(true);
    expect(metrics.rollouts.find((x) => x.gold === '')!.baselineCorrect).toBeUndefined();
    expect(summary.earlyExitAccuracy).toBeCloseTo(graded.filter((x) => x.earlyExitCorrect).length / graded.length, 12);
    // A kept row's early-exit answer is its stored answer.
    for (const x of metrics.rollouts.filter((y) => y.exitEvent === null)) expect(x.earlyExitAnswer).toBe(x.baselineAnswer);
    expect(metrics.rollouts.map((x) => x.baselineAnswer)).toEqual(['5', '42', '6', '19', '9', '4', '2', '10']);
  });

  it("rebuilds DEER's own prompt by default (its system message, then the question), so hidden states are read under it", async () => {
    const out = join(dir, 'deer-prompt.jsonl');
    const metricsPath = join(dir, 'deer-prompt.metrics.json');
    const r = lynx(['deer-rollouts', '-m', modelPath, '--probe', exp, '--in', inPath, '-o', out, '--answer-max-tokens', '2', '--metrics', metricsPath, '--limit', '3']);
    expect(r.code, r.stderr).toBe(0);
    const got = (JSON.parse(readFileSync(metricsPath, 'utf8')) as { rollouts: DeerRolloutRecord[] }).rollouts;
    const context = new LlamaContext(model, { nCtx: 2048, nSeqMax: 2, threads: 1, kvType: 'f32', flashAttention: false });
    try {
      for (let i = 0; i < 3; i++) {
        const messages = [
          { role: 'system' as const, content: 'Please reason step by step, and put your final answer within \\boxed{}.' },
          { role: 'user' as const, content: question(INPUT[i]!) },
        ];
        const prompt = tokenize(renderChatForModel(model, messages));
        const ref = reference[i]!;
        const seq = context.createSequence();
        await seq.append(prompt);
        const h = await seq.append(ref.tokens, { taps: { layers: TAPS, positions: ref.events.map((e) => e.tokenIndex) } });
        seq.dispose();
        const nFeatures = LAYERS.length * N_EMBD;
        const probe = loadProbe(join(exp, 'probe')).probe;
        ref.events.forEach((e, k) => {
          const f = new Float32Array(nFeatures);
          TAPS.forEach((l, j) => f.set(h.hidden.get(l)!.subarray(k * N_EMBD, (k + 1) * N_EMBD), j * N_EMBD));
          const score = probe.predictOne(f);
          expect(Math.abs(got[i]!.events[k]!.score - score)).toBeLessThan(1e-4);
          // ... and not the score under the zst prompt.
          expect(Math.abs(score - e.score)).toBeGreaterThan(1e-6);
        });
      }
    } finally {
      context.dispose();
    }
  });

  it('--limit takes the first rollouts and prints a readable summary', () => {
    const out = join(dir, 'limit.jsonl');
    const r = lynx(['deer-rollouts', '-m', modelPath, '--probe', exp, '--in', inPath, '-o', out, '--limit', '2', '--answer-max-tokens', '4']);
    expect(r.code, r.stderr).toBe(0);
    const rows = readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as DeerRolloutRow);
    expect(rows.map((x) => x.question)).toEqual([question(INPUT[0]!), question(INPUT[1]!)]);
    expect(r.stdout).toMatch(/LYNX \(lynx, delta 0\.1\) on 2 DEER rollouts \(\d+ cue events in 2\): exited \d \(\d+\.\d%\)/);
    expect(r.stdout).toMatch(/Tokens per rollout: stored \d+\.\d, early exit \d+\.\d \(savings -?\d+\.\d%\)/);
    expect(r.stdout).toMatch(/Accuracy \(2 with a gold answer\): stored 100\.0%, early exit \d+\.\d%/);
  });

  it('bad input exits with code 1 and names the problem', () => {
    const run = (input: string, extra: string[] = [], probe = exp) =>
      lynx(['deer-rollouts', '-m', modelPath, '--probe', probe, '--in', input, '-o', join(dir, 'bad-out.jsonl'), ...extra]);

    const malformed = join(dir, 'malformed.jsonl');
    writeFileSync(malformed, [JSON.stringify(INPUT[0]), '', '{"question": "x", "generated_responses": [', JSON.stringify(INPUT[1])].join('\n'));
    const m = run(malformed);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/malformed\.jsonl:3: malformed JSON line/);

    const noResponse = join(dir, 'no-response.jsonl');
    writeFileSync(noResponse, [JSON.stringify(INPUT[0]), JSON.stringify({ question: 'x', gold_answer: '1' })].join('\n'));
    const nr = run(noResponse);
    expect(nr.code).toBe(1);
    expect(nr.stderr).toMatch(/no-response\.jsonl:2: no "generated_responses"/);

    const missing = run(join(dir, 'nowhere.jsonl'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read DEER rollouts .*nowhere\.jsonl/);

    // A probe trained on another model: 2 layers x 32 features instead of 2 x 64.
    const other = join(dir, 'other-exp');
    saveProbe(join(other, 'probe'), new Probe(64, new Float32Array(64), new Float32Array(64).fill(1), initLayers([64, 8, 1], new Rng(1))), {
      hiddenStateLayers: LAYERS,
      cues: CUES,
    });
    writeRule(other, 0.5);
    const mismatch = run(inPath, [], other);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(/expects 64 features, but 2 hidden-state layers x 64 .* = 128: was it trained on another model\?/);

    const delta = run(inPath, ['--delta', '0.05']);
    expect(delta.code).toBe(1);
    expect(delta.stderr).toMatch(/no calibrated lynx rule for delta 0\.05 .*available: conformal_calib_010\.json/);

    // Nothing was written by the failed runs.
    expect(() => readFileSync(join(dir, 'bad-out.jsonl'))).toThrow();
  });
});
