/**
 * Which arithmetic steps a demo model gets wrong: every `X op K = Y.` line (and `X op K is Y, not Z.` fix) of its
 * sampled traces, checked against exact arithmetic and grouped by operation and result size. This is what chooses
 * the steps the small model's training traces hand to the big model (`TraceOptions.offload`, issue 17): the
 * operations it gets wrong most.
 *
 * Measured on the `calib` part of the held-out problems, so the `test` part the comparison is reported on plays no
 * part in designing the small model.
 */
import { LlamaContext, type LlamaModel } from '../engine/index.js';
import { fullRollout, methodEnv } from '../reasoning/method.js';
import { problemPromptTokens } from '../reasoning/prompt-tokens.js';
import { forEachConcurrent } from '../util/concurrency.js';
import { applyOp, heldOutProblems, type OpKind, type ProblemSplit } from '../tasks/demo/problems.js';
import { toBenchmarkProblem } from '../tasks/demo/benchmark.js';
import { BIG_CLOSE, BIG_OPEN } from '../reasoning/compose/protocol.js';
import { THINK_END } from './traces.js';

const SYMBOL_KIND: Record<string, OpKind> = { '+': 'add', '-': 'sub', '×': 'mul', '÷': 'div' };
const STEP = /(\d+) ([+\-×÷]) (\d+) (?:=|is) (\d+)(?:\.|, not)/g;

export interface StepCheck {
  kind: OpKind;
  x: number;
  operand: number;
  written: number;
  right: boolean;
  /** In the first pass (before the first candidate answer), not in a verification round. */
  firstPass: boolean;
}

/** Every arithmetic step of a completion's thinking (tags removed), checked. */
export function checkSteps(completion: string): StepCheck[] {
  const end = completion.indexOf(THINK_END);
  const thinking = (end >= 0 ? completion.slice(0, end) : completion).split(BIG_OPEN).join('').split(BIG_CLOSE).join('');
  const firstAnswer = thinking.indexOf('answer is');
  return [...thinking.matchAll(STEP)].map((m) => {
    const kind = SYMBOL_KIND[m[2]!]!;
    const x = Number(m[1]);
    const operand = Number(m[3]);
    const written = Number(m[4]);
    return { kind, x, operand, written, right: applyOp(kind, operand, x) === written, firstPass: firstAnswer < 0 || m.index! < firstAnswer };
  });
}

export interface StepErrorRow {
  /** `mul`, or `mul, result >= 100`, ... */
  group: string;
  steps: number;
  wrong: number;
  errorRate: number;
  /** The same over first-pass steps only (what the first candidate answer rests on). */
  firstPassSteps: number;
  firstPassErrorRate: number;
}

/** Result size classes: one digit, two, three or more. */
function sizeClass(c: StepCheck): string {
  const r = applyOp(c.kind, c.operand, c.x) ?? c.written;
  return r < 10 ? 'result < 10' : r < 100 ? 'result 10-99' : 'result >= 100';
}

/** Error rates by operation, and by operation and result size, sorted by error rate (highest first) within each. */
export function stepErrorTable(checks: readonly StepCheck[]): StepErrorRow[] {
  const row = (group: string, xs: readonly StepCheck[]): StepErrorRow => {
    const fp = xs.filter((c) => c.firstPass);
    const wrong = xs.filter((c) => !c.right).length;
    return {
      group,
      steps: xs.length,
      wrong,
      errorRate: xs.length === 0 ? 0 : wrong / xs.length,
      firstPassSteps: fp.length,
      firstPassErrorRate: fp.length === 0 ? 0 : fp.filter((c) => !c.right).length / fp.length,
    };
  };
  const kinds: OpKind[] = ['add', 'sub', 'mul', 'div'];
  const byKind = kinds.map((k) => row(k, checks.filter((c) => c.kind === k))).sort((a, b) => b.errorRate - a.errorRate);
  const bySize = kinds
    .flatMap((k) => ['result < 10', 'result 10-99', 'result >= 100'].map((s) => row(`${k}, ${s}`, checks.filter((c) => c.kind === k && sizeClass(c) === s))))
    .filter((r) => r.steps > 0)
    .sort((a, b) => b.errorRate - a.errorRate);
  return [row('all', checks), ...byKind, ...bySize];
}

export interface StepErrorReport {
  model: string;
  part: Exclude<ProblemSplit, 'train'>;
  problems: number;
  accuracy: number;
  rows: StepErrorRow[];
}

/** Sample one trace per held-out problem (temperature 0.6, as the model card) and tabulate its step errors. */
export async function measureStepErrors(
  model: LlamaModel,
  opts: { part?: Exclude<ProblemSplit, 'train'>; perLevel?: number; maxTokens?: number; seed?: number; concurrency?: number; onProgress?: () => void } = {},
): Promise<StepErrorReport> {
  const part = opts.part ?? 'calib';
  const problems = heldOutProblems(opts.perLevel ?? 100, part);
  const maxTokens = opts.maxTokens ?? 600;
  const concurrency = opts.concurrency ?? 8;
  const context = new LlamaContext(model, { nCtx: concurrency * (maxTokens + 200), nSeqMax: concurrency });
  const env = methodEnv({ context, sampler: { temperature: 0.6, topP: 0.95 }, maxTokens, seed: opts.seed ?? 0 });
  const checks: StepCheck[] = [];
  let correct = 0;
  try {
    await forEachConcurrent(problems.length, concurrency, async (i) => {
      const p = problems[i]!;
      const o = await fullRollout().solve({ problemId: p.id, promptTokens: problemPromptTokens(model, toBenchmarkProblem(p, part)) }, env);
      checks.push(...checkSteps(o.text));
      const boxed = [...o.answerText.matchAll(/\\boxed\{(\d+)\}/g)].at(-1);
      if (boxed && Number(boxed[1]) === p.answer) correct++;
      opts.onProgress?.();
    });
  } finally {
    context.dispose();
  }
  return { model: model.info.path, part, problems: problems.length, accuracy: correct / problems.length, rows: stepErrorTable(checks) };
}

export function stepErrorMarkdown(r: StepErrorReport): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return [
    '| steps | checked | wrong | error rate | first-pass steps | first-pass error rate |',
    '|---|---|---|---|---|---|',
    ...r.rows.map((x) => `| ${x.group} | ${x.steps} | ${x.wrong} | ${pct(x.errorRate)} | ${x.firstPassSteps} | ${pct(x.firstPassErrorRate)} |`),
  ].join('\n');
}
