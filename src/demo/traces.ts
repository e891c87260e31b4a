/**
 * R1-style reasoning traces for the demo problems, with everything early exit needs to be meaningful:
 *
 * - working steps, one line per operation, then a first candidate answer ("So the answer is 17.");
 * - a random number of verification rounds, each opened by a cue word (Wait / Hmm / Alternatively) and closed by a
 *   restated candidate: most rounds only confirm (the overthinking early exit removes);
 * - slips: a wrong intermediate result carried forward. A later round may notice it ("Wait, 12 + 5 is 17, not 18.")
 *   and fix the answer (exiting before that round hurts), or repeat it, so the final answer is sometimes wrong;
 * - rare false corrections of a right step (overthinking that hurts: exiting earlier would have helped);
 * - the end: `</think>` then `Final Answer: \boxed{N}` (after a blank line or a space, so the paper's exit cue
 *   `</think> Final Answer: \boxed{` is in distribution wherever a forced exit cuts before a cue).
 *
 * A rounds always ends with a candidate and a blank line, and every round starts with a cue word, so the text before a
 * round's cue is exactly the text a natural end of thinking follows: a forced exit at that cue answers the latest
 * candidate. Whether that candidate is right depends on whether a slip is still unfixed, which the model can tell
 * from the arithmetic it has just read: this is what the probe learns from hidden states.
 */
import { Rng } from '../util/rng.js';
import { withHintLine, zstMessages } from '../tasks/prompts.js';
import { BIG_CLOSE, BIG_OPEN, OFFLOAD_HINT } from '../reasoning/compose/protocol.js';
import { InvalidInputError } from '../util/errors.js';
import { applyOp, expression, generateProblems, inverseKind, type DemoProblem, type OpKind, type ProblemSplit } from '../tasks/demo/problems.js';
import { preTokenize } from './tokenizer.js';

/** The user turn in LYNX's zst style, exactly as the evaluation harness builds it (problem, newline, instruction). */
export function zstPrompt(problemText: string): string {
  return zstMessages(problemText)[0]!.content;
}

/** The same user turn with SplitReason's hint line between problem and instruction (the small model's prompt). */
export function offloadPrompt(problemText: string): string {
  return withHintLine(zstMessages(problemText), OFFLOAD_HINT)[0]!.content;
}

export const THINK_START = '<think>';
export const THINK_END = '</think>';

/** Probabilities that shape the traces; per level where it matters (index 0 = level 1). */
export interface TraceOptions {
  /** Chance that a working step of the first pass writes a wrong result. */
  slipPerStep: readonly number[];
  /** Extra factor on the slip chance of multiplications and divisions. */
  slipFactorMulDiv: number;
  /** Chance that checking a wrong step notices it. */
  notice: readonly number[];
  /** Chance per verification round of "correcting" a right step into a wrong one. */
  falseFixPerRound: number;
  /** Weights of 1, 2, 3, ... verification rounds. */
  roundWeights: readonly number[];
  /** Chance of one more confirming round after a round that changed the answer. */
  confirmAfterChange: number;
  /** Weights of the round kinds: full recomputation, spot check of one step, working backwards. */
  kindWeights: { recompute: number; spot: number; backward: number };
  /** Chance that a spot check picks a wrong step when there is one (else a uniform step). */
  spotSuspicious: number;
  /** Chance that one working step of the first pass starts with "Hmm, then" (a cue before any answer). */
  midWorkCue: number;
  /** Share of endings `</think> Final Answer:` (the rest: `</think>\n\nFinal Answer:`). */
  spaceEnding: number;
  /**
   * No further verification round starts when the whole example (prompt, thinking, answer) might pass this many
   * tokens (the first round always runs), so traces fit the training window. Counted as pre-tokens, which the demo
   * tokenizer's vocabulary turns into about as many tokens; the chat template adds about 10.
   */
  maxTokens: number;
  /**
   * The first working line: 'starts' ("Tom starts with 13 beads.") or 'restate' (the problem's first sentence
   * verbatim, "Tom has 13 beads."). Verbatim restating lets a model copy the start quantity the way it copies the
   * operation clauses (an induction pattern), which a model trained with frozen K/V learns far more easily.
   */
  firstLine: 'starts' | 'restate';
  /**
   * Operations whose lines the trace hands to the big model, SplitReason style (issue 17): every line that works out
   * such a step (first pass, recomputations, fixes, working backwards) is written inside `<bigmodel>...</bigmodel>`,
   * `<bigmodel>He triples his coins: 13 × 3 = 39.\n</bigmodel>`, and the prompt carries the hint line. The whole line,
   * not only the result: the small model that this is for also miscopies operands and carried values. The closing tag
   * comes after the line's end, so the small model learns to hand back once the big model has finished a line.
   * Empty (the default): plain traces.
   */
  offload?: readonly OpKind[];
}

export const DEFAULT_TRACE_OPTIONS: TraceOptions = {
  slipPerStep: [0.03, 0.05, 0.07, 0.09, 0.11],
  slipFactorMulDiv: 1.5,
  notice: [0.75, 0.65, 0.55, 0.45, 0.35],
  falseFixPerRound: 0.025,
  roundWeights: [0.15, 0.3, 0.3, 0.15, 0.1],
  confirmAfterChange: 0.6,
  kindWeights: { recompute: 0.5, spot: 0.3, backward: 0.2 },
  spotSuspicious: 0.35,
  midWorkCue: 0.15,
  spaceEnding: 0.4,
  maxTokens: 490,
  firstLine: 'starts',
};

export type RoundKind = 'recompute' | 'spot' | 'backward';

/** Tokens a tagged span adds beyond its pre-tokens (`<bigmodel>`, `</bigmodel>`: 21 letter tokens, 3 pre-tokens). */
const TAG_TOKENS = 18;

/** Character spans are offsets into `Trace.thinking`. */
export interface CandidateMark {
  value: number;
  correct: boolean;
  start: number;
  end: number;
  /** -1 for the first pass, else the verification round. */
  round: number;
}

export interface CueMark {
  word: string;
  start: number;
  end: number;
  round: number;
  /** 'round': opens a verification round; 'fix': announces a correction; 'work': inside the first pass. */
  role: 'round' | 'fix' | 'work';
}

export interface SlipMark {
  /** Operation index (0-based). */
  step: number;
  right: number;
  wrong: number;
  /** Where it was made: -1 = first pass, else the round. */
  round: number;
  /** 'slip': a wrong result in the working; 'false-fix': a right result "corrected" into a wrong one. */
  kind: 'slip' | 'false-fix';
  /** The round whose check put the step right again, or null if it never was. */
  fixedInRound: number | null;
}

export interface RoundMark {
  index: number;
  kind: RoundKind;
  cue: string;
  start: number;
  end: number;
  /** True when the round changed the candidate answer. */
  changed: boolean;
}

export interface Trace {
  problem: DemoProblem;
  /** The user turn (zst: problem, newline, instruction). */
  prompt: string;
  /** Text between `<think>\n` and `</think>` (ends with a blank line). */
  thinking: string;
  /** Text after `</think>` (the final answer). */
  ending: string;
  /** What the model writes after the generation prompt `...<｜Assistant｜><think>\n`: thinking, `</think>`, ending
   * (the end-of-sentence token follows as a token, not as text). */
  completion: string;
  finalAnswer: number;
  correct: boolean;
  candidates: CandidateMark[];
  cues: CueMark[];
  slips: SlipMark[];
  rounds: RoundMark[];
}

/**
 * Builds the thinking text and records marks at their offsets. Lines for the big model go into one `<bigmodel>` span
 * per run of consecutive such lines: the span opens at the first and closes when anything else is written.
 */
class TextBuilder {
  text = '';
  private open = false;
  private inBigLine = false;

  mark(s: string): { start: number; end: number } {
    if (this.open && !this.inBigLine) {
      this.text += BIG_CLOSE;
      this.open = false;
    }
    const start = this.text.length;
    this.text += s;
    return { start, end: this.text.length };
  }

  /** Write one line (through `mark`) for the big model. */
  bigLine(write: () => void): void {
    if (!this.open) {
      this.text += BIG_OPEN;
      this.open = true;
    }
    this.inBigLine = true;
    try {
      write();
    } finally {
      this.inBigLine = false;
    }
  }
}

function weightedIndex(rng: Rng, weights: readonly number[]): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let u = rng.next() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i]!;
    if (u < 0) return i;
  }
  return weights.length - 1;
}

function levelValue(values: readonly number[], level: number): number {
  return values[Math.min(values.length, Math.max(1, level)) - 1]!;
}

/** Values along the chain from `value` after operation `step`, or null when a later step becomes impossible. */
function carryForward(problem: DemoProblem, step: number, value: number): number[] | null {
  const out = [value];
  let x = value;
  for (let i = step + 1; i < problem.ops.length; i++) {
    const op = problem.ops[i]!;
    const y = applyOp(op.kind, op.operand, x);
    if (y === null || y < 1 || y > 9999) return null;
    out.push(y);
    x = y;
  }
  return out;
}

/** A plausible wrong result for `x kind operand = right` that keeps the rest of the chain computable. */
function wrongResult(rng: Rng, problem: DemoProblem, step: number, right: number): number | null {
  const op = problem.ops[step]!;
  const deltas = [1, -1, 2, -2, 10, -10];
  if (op.kind === 'mul') deltas.push(op.operand, -op.operand);
  rng.shuffle(deltas);
  for (const d of deltas) {
    const w = right + d;
    if (w < 1 || w === right) continue;
    if (carryForward(problem, step, w)) return w;
  }
  return null;
}

/** Check that the trace options are usable, with a message that says which one is not. */
export function validateTraceOptions(o: TraceOptions): void {
  const prob = (name: string, v: number) => {
    if (!(v >= 0 && v <= 1)) throw new InvalidInputError(`trace option ${name} must be a probability in [0, 1], got ${v}`);
  };
  o.slipPerStep.forEach((v, i) => prob(`slipPerStep[${i}]`, v));
  o.notice.forEach((v, i) => prob(`notice[${i}]`, v));
  for (const [k, v] of Object.entries({ falseFixPerRound: o.falseFixPerRound, confirmAfterChange: o.confirmAfterChange, spotSuspicious: o.spotSuspicious, midWorkCue: o.midWorkCue, spaceEnding: o.spaceEnding })) prob(k, v);
  if (o.slipPerStep.length === 0 || o.notice.length === 0) throw new InvalidInputError('trace options slipPerStep and notice need one value per level');
  if (o.roundWeights.length === 0 || o.roundWeights.some((w) => w < 0) || o.roundWeights.every((w) => w === 0)) {
    throw new InvalidInputError('trace option roundWeights needs non-negative weights, at least one positive');
  }
  const kw = Object.values(o.kindWeights);
  if (kw.some((w) => w < 0) || kw.every((w) => w === 0)) throw new InvalidInputError('trace option kindWeights needs a positive weight');
  if (!(o.maxTokens > 0)) throw new InvalidInputError(`trace option maxTokens must be positive, got ${o.maxTokens}`);
  for (const k of o.offload ?? []) {
    if (!['add', 'sub', 'mul', 'div'].includes(k)) throw new InvalidInputError(`trace option offload lists '${String(k)}': use add, sub, mul or div`);
  }
  if (o.firstLine !== 'starts' && o.firstLine !== 'restate') throw new InvalidInputError(`trace option firstLine must be 'starts' or 'restate', got ${String(o.firstLine)}`);
  if (o.kindWeights.recompute + o.kindWeights.spot <= 0) {
    throw new InvalidInputError('trace option kindWeights needs recompute or spot (backward checks are not always possible)');
  }
}

/**
 * Generate the reasoning trace of a problem. Reproducible: the same problem and rng state give the same trace. Use
 * `traceRng(seed, problem)` for a per-problem stream independent of generation order.
 */
export function generateTrace(problem: DemoProblem, rng: Rng, options: Partial<TraceOptions> = {}): Trace {
  const o: TraceOptions = { ...DEFAULT_TRACE_OPTIONS, ...options };
  validateTraceOptions(o);
  const ops = problem.ops;
  const n = ops.length;
  const level = problem.level;
  const notice = levelValue(o.notice, level);
  const offload = new Set(o.offload ?? []);
  const prompt = offload.size > 0 ? offloadPrompt(problem.text) : zstPrompt(problem.text);
  const b = new TextBuilder();
  /** Write one arithmetic line of operation `kind`; an offloaded kind's line is the big model's, in tags. */
  const line = (kind: OpKind, write: () => void) => (offload.has(kind) ? b.bigLine(write) : write());
  const candidates: CandidateMark[] = [];
  const cues: CueMark[] = [];
  const slips: SlipMark[] = [];
  const rounds: RoundMark[] = [];
  /** Index into `slips` of the unfixed wrong result at each step (or -1). */
  const openSlip: number[] = new Array(n).fill(-1);

  const cue = (word: string, rest: string, round: number, role: CueMark['role']) => {
    const m = b.mark(word);
    cues.push({ word, start: m.start, end: m.end, round, role });
    b.mark(rest);
  };
  const candidate = (lead: string, value: number, round: number) => {
    b.mark(lead);
    const m = b.mark(String(value));
    candidates.push({ value, correct: value === problem.answer, start: m.start, end: m.end, round });
    b.mark('.');
  };

  // First pass: the working steps.
  let belief: number[] = [problem.start];
  const midCueStep = n > 1 && rng.next() < o.midWorkCue ? rng.int(1, n - 1) : -1;
  b.mark(o.firstLine === 'restate' ? `${problem.name} has ${problem.start} ${problem.item}.\n` : `${problem.name} starts with ${problem.start} ${problem.item}.\n`);
  for (let i = 0; i < n; i++) {
    const op = ops[i]!;
    const x = belief[i]!;
    const right = applyOp(op.kind, op.operand, x)!;
    let value = right;
    const pSlip = levelValue(o.slipPerStep, level) * (op.kind === 'mul' || op.kind === 'div' ? o.slipFactorMulDiv : 1);
    if (rng.next() < pSlip) {
      const w = wrongResult(rng, problem, i, right);
      if (w !== null) {
        value = w;
        openSlip[i] = slips.length;
        slips.push({ step: i, right, wrong: w, round: -1, kind: 'slip', fixedInRound: null });
      }
    }
    // A slip is carried forward: later steps compute exactly from the wrong value.
    line(op.kind, () => {
      let clause = op.clause;
      if (i === midCueStep) {
        const lowered = /^(He|She|The) /.test(clause) ? clause.charAt(0).toLowerCase() + clause.slice(1) : clause;
        cue('Hmm', `, then ${lowered}`, -1, 'work');
        clause = '';
      }
      b.mark(`${clause}: ${expression(x, op.kind, op.operand)} = ${value}.\n`);
    });
    belief.push(value);
  }
  candidate('So the answer is ', belief[n]!, -1);

  // Verification rounds.
  let nRounds = 1 + weightedIndex(rng, o.roundWeights);
  const kindWeights = [o.kindWeights.recompute, o.kindWeights.spot, o.kindWeights.backward];
  const kindNames: RoundKind[] = ['recompute', 'spot', 'backward'];
  // A full recomputation is the longest round: its step lines (digits, operators, spaces), an opener, maybe a fix
  // line, and the closing candidate; the final answer after </think> takes about 15 more.
  const fixed = preTokenize(prompt).length + 10 + 15;
  // The tags are not in the demo tokenizer's training text, so it spells them letter by letter: a tagged step costs
  // about TAG_TOKENS more tokens than its pre-tokens show.
  const count = (text: string) => preTokenize(text).length + (offload.size > 0 ? TAG_TOKENS * (text.split(BIG_OPEN).length - 1) : 0);
  const roundEstimate = () =>
    40 + (ops.some((op) => offload.has(op.kind)) ? 2 * TAG_TOKENS : 0) + ops.reduce((a, op, i) => a + 6 + `${belief[i]}${op.operand}${belief[i + 1]}`.length, 0);
  for (let r = 0; r < nRounds; r++) {
    // Near the budget only a spot check (short unless it finds a slip) still fits; past it, thinking ends.
    const room = o.maxTokens - fixed - count(b.text);
    const onlySpot = r > 0 && room < roundEstimate();
    if (onlySpot && (room < 30 + roundEstimate() / 2 || o.kindWeights.spot === 0)) break;
    b.mark('\n\n');
    const roundStart = b.text.length;
    let kind = onlySpot ? 'spot' : kindNames[weightedIndex(rng, kindWeights)]!;
    let backwardValues: number[] | null = null;
    if (kind === 'backward') {
      backwardValues = workBackwards(problem, belief[n]!);
      if (!backwardValues) kind = o.kindWeights.spot > 0 && rng.next() < 0.5 ? 'spot' : 'recompute';
      if (kind === 'recompute' && o.kindWeights.recompute === 0) kind = 'spot';
    }
    const before = belief[n]!;
    const falseFixStep = rng.next() < o.falseFixPerRound ? rng.int(0, n - 1) : -1;
    let openerCue = '';
    const wrongStep = (i: number) => belief[i + 1] !== applyOp(ops[i]!.kind, ops[i]!.operand, belief[i]!);

    /** Recompute from step `from` with `cur[from]` given; writes one line per step, notices wrong steps. */
    const recompute = (cur: number[], from: number, forceNotice: boolean, allowFalseFix: boolean) => {
      let changed = false;
      for (let i = from; i < n; i++) {
        const op = ops[i]!;
        const x = cur[i]!;
        const right = applyOp(op.kind, op.operand, x)!;
        const e = expression(x, op.kind, op.operand);
        let v = right;
        // Every branch writes one line: a recomputation or a fix.
        line(op.kind, () => {
          if (!changed && x === belief[i]) {
            const old = belief[i + 1]!;
            if (old !== right) {
              if (forceNotice || rng.next() < notice) {
                cue('Wait', `, ${e} is ${right}, not ${old}.\n`, r, 'fix');
                closeSlip(i, r);
                changed = true;
              } else {
                v = old;
                b.mark(`${e} = ${old}.\n`);
              }
            } else if (allowFalseFix && i === falseFixStep) {
              const w = wrongResult(rng, problem, i, right);
              if (w !== null) {
                cue('Wait', `, ${e} is ${w}, not ${right}.\n`, r, 'fix');
                closeSlip(i, r);
                openSlip[i] = slips.length;
                slips.push({ step: i, right, wrong: w, round: r, kind: 'false-fix', fixedInRound: null });
                v = w;
                changed = true;
              } else b.mark(`${e} = ${right}.\n`);
            } else b.mark(`${e} = ${right}.\n`);
          } else {
            // The input differs from the earlier pass (a fix upstream): this is new arithmetic, done right.
            if (openSlip[i] >= 0) closeSlip(i, r);
            b.mark(`${e} = ${right}.\n`);
          }
        });
        cur.push(v);
      }
      return cur;
    };
    const closeSlip = (i: number, round: number) => {
      const k = openSlip[i]!;
      if (k >= 0) {
        slips[k]!.fixedInRound = round;
        openSlip[i] = -1;
      }
    };

    if (kind === 'recompute') {
      openerCue = rng.pick(['Wait', 'Wait', 'Hmm', 'Hmm', 'Alternatively']);
      const rest = {
        Wait: rng.pick([', let me check that again.\n', ', let me recompute to be sure.\n']),
        Hmm: rng.pick([', let me verify each step.\n', ', let me go through it once more.\n']),
        Alternatively: ', let me redo the steps one by one.\n',
      }[openerCue]!;
      cue(openerCue, rest, r, 'round');
      belief = recompute([problem.start], 0, false, true);
    } else if (kind === 'spot') {
      const wrong = Array.from({ length: n }, (_, i) => i).filter(wrongStep);
      const j = wrong.length > 0 && rng.next() < o.spotSuspicious ? rng.pick(wrong) : rng.int(0, n - 1);
      const op = ops[j]!;
      const e = expression(belief[j]!, op.kind, op.operand);
      const old = belief[j + 1]!;
      const right = applyOp(op.kind, op.operand, belief[j]!)!;
      openerCue = rng.pick(['Hmm', 'Wait']);
      cue(openerCue, openerCue === 'Hmm' ? `, let me double-check ${e} = ${old}.\n` : `, let me check ${e} = ${old} again.\n`, r, 'round');
      let fixed: number | null = null;
      if (old !== right && rng.next() < notice) {
        line(op.kind, () => cue('Wait', `, ${e} is ${right}, not ${old}.\n`, r, 'fix'));
        closeSlip(j, r);
        fixed = right;
      } else if (old === right && j === falseFixStep) {
        const w = wrongResult(rng, problem, j, right);
        if (w !== null) {
          line(op.kind, () => cue('Wait', `, ${e} is ${w}, not ${right}.\n`, r, 'fix'));
          openSlip[j] = slips.length;
          slips.push({ step: j, right, wrong: w, round: r, kind: 'false-fix', fixedInRound: null });
          fixed = w;
        }
      }
      if (fixed === null) {
        b.mark(`Yes, ${e} = ${old} is right.\n`);
      } else {
        const cur = belief.slice(0, j + 1);
        cur.push(fixed);
        // The steps after the changed one are recomputed from the new value.
        for (let i = j + 1; i < n; i++) {
          const op2 = ops[i]!;
          const y = applyOp(op2.kind, op2.operand, cur[i]!)!;
          if (openSlip[i] >= 0) closeSlip(i, r);
          line(op2.kind, () => b.mark(`${expression(cur[i]!, op2.kind, op2.operand)} = ${y}.\n`));
          cur.push(y);
        }
        belief = cur;
      }
    } else {
      openerCue = 'Alternatively';
      cue('Alternatively', rng.pick([`, let me work backwards from ${before}.\n`, `, I can check by going backwards from ${before}.\n`]), r, 'round');
      // Unless the check notices, it repeats a wrong step backwards too (confirmation bias) and finds no mismatch.
      const wrongAnywhere = Array.from({ length: n }, (_, i) => i).some(wrongStep);
      const back = wrongAnywhere && rng.next() >= notice ? belief.slice() : backwardValues!;
      for (let i = n - 1; i >= 0; i--) {
        const op = ops[i]!;
        line(inverseKind(op.kind), () => b.mark(`${expression(back[i + 1]!, inverseKind(op.kind), op.operand)} = ${back[i]}.\n`));
      }
      if (back[0] === problem.start) {
        b.mark(`This gives back ${problem.start}, which matches.\n`);
      } else {
        // Working backwards is exact, so any wrong step shows up as a mismatch; redo the steps and fix it.
        b.mark(`This gives ${back[0]}, but the start is ${problem.start}. `);
        cue('Wait', ', let me redo the steps.\n', r, 'fix');
        belief = recompute([problem.start], 0, true, false);
      }
    }
    const after = belief[n]!;
    const changed = after !== before;
    if (changed) candidate('So the answer is ', after, r);
    else candidate(rng.pick(['Yes, the answer is ', 'So the answer is still ']), after, r);
    rounds.push({ index: r, kind, cue: openerCue, start: roundStart, end: b.text.length, changed });
    if (changed && r === nRounds - 1 && rng.next() < o.confirmAfterChange) nRounds++;
  }
  b.mark('\n\n');

  const thinking = b.text;
  const finalAnswer = belief[n]!;
  const ending = `${rng.next() < o.spaceEnding ? ' ' : '\n\n'}Final Answer: \\boxed{${finalAnswer}}`;
  return {
    problem,
    prompt,
    thinking,
    ending,
    completion: `${thinking}${THINK_END}${ending}`,
    finalAnswer,
    correct: finalAnswer === problem.answer,
    candidates,
    cues,
    slips,
    rounds,
  };
}

/** The chain worked backwards from `answer` (index i = value before operation i), or null when a step is not exact. */
export function workBackwards(problem: DemoProblem, answer: number): number[] | null {
  const n = problem.ops.length;
  const back: number[] = new Array(n + 1);
  back[n] = answer;
  for (let i = n - 1; i >= 0; i--) {
    const op = problem.ops[i]!;
    const y = applyOp(inverseKind(op.kind), op.operand, back[i + 1]!);
    if (y === null || y < 0) return null;
    back[i] = y;
  }
  return back;
}

/** A per-problem random stream: a trace depends only on the seed and the problem, not on generation order. */
export function traceRng(seed: number, problem: Pick<DemoProblem, 'id' | 'text'>): Rng {
  return Rng.derive(seed, `${problem.id}|${problem.text}`);
}

/** Cue words as the project's default cue list matches them (whole words, case-insensitive). */
export const CUE_WORD = /\b(?:wait|hmm+|alternatively)\b/gi;
const CANDIDATE = /\banswer is (?:still )?(\d+)\./g;
const BOXED = /\\boxed\{(\d+)\}/g;

export interface ParsedCompletion {
  thinking: string;
  /** The last `\boxed{N}` after `</think>`, or null. */
  finalAnswer: number | null;
  candidates: { value: number; start: number; end: number }[];
  cues: { word: string; start: number; end: number }[];
}

/** Read a completion back from its text alone (what a model writes): thinking, candidates, cue words, final answer. */
export function parseCompletion(completion: string): ParsedCompletion {
  const endAt = completion.indexOf(THINK_END);
  const thinking = endAt >= 0 ? completion.slice(0, endAt) : completion;
  const after = endAt >= 0 ? completion.slice(endAt + THINK_END.length) : '';
  const candidates = [...thinking.matchAll(CANDIDATE)].map((m) => {
    const start = m.index! + m[0].length - 1 - m[1]!.length;
    return { value: Number(m[1]), start, end: start + m[1]!.length };
  });
  const cues = [...thinking.matchAll(CUE_WORD)].map((m) => ({ word: m[0], start: m.index!, end: m.index! + m[0].length }));
  const boxed = [...after.matchAll(BOXED)];
  const finalAnswer = boxed.length > 0 ? Number(boxed[boxed.length - 1]![1]) : null;
  return { thinking, finalAnswer, candidates, cues };
}

/** Reproducible traces of `count` problems drawn from `seed` (training split unless told otherwise). */
export function generateTraces(
  count: number,
  opts: { seed: number; levels?: readonly number[]; split?: ProblemSplit | 'any'; trace?: Partial<TraceOptions> },
): Trace[] {
  return generateProblems(count, opts).map((p) => generateTrace(p, traceRng(opts.seed, p), opts.trace));
}
