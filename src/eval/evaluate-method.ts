/**
 * Runs a reasoning method (or a sweep of its settings from one generation per problem) over a benchmark through the
 * resumable runner: one run folder per setting under `<root>/eval/<benchmark>/<method>/<setting>/`.
 */
import type { Generator, Vocabulary } from '../backends/generator.js';
import { checkRequirements, type MethodEnv, type MethodOutcome, type ReasoningMethod, type ReasoningSweep } from '../reasoning/method.js';
import { problemPromptTokens } from '../reasoning/prompt-tokens.js';
import type { Problem } from '../tasks/problem.js';
import type { Grading } from '../tasks/answer-equiv.js';
import type { PromptStyle } from '../tasks/prompts.js';
import type { CueEventRecord, PredictionRecord } from './records.js';
import { runDir } from './records.js';
import { runEvaluation, type RunResult, type SolveOutput } from './runner.js';
import { InvalidInputError } from '../util/errors.js';

export interface EvaluateOptions {
  problems: readonly Problem[];
  /**
   * Rollouts per problem (LYNX's `--test-rollouts`). Default 1. With more, each problem runs that many times, rollout r
   * with the seeds of `MethodInput.rollout` r, recorded as `<id>#<r>` (problems cluster the intervals).
   */
  rollouts?: number;
  benchmark: string;
  /** Experiment root. */
  root: string;
  method: ReasoningMethod | ReasoningSweep;
  env: MethodEnv;
  promptStyle?: PromptStyle;
  grading?: Grading;
  shard?: { index: number; count: number };
  /** Problems solved at once (their sequences decode together). Default 1. */
  concurrency?: number;
  config?: Record<string, unknown>;
  /**
   * Decode each problem with its own new generator from this factory (disposed when the problem is done) instead of
   * `env.generator`: locally, a fresh context per problem gives exactly a lone run's result (as the dataset builder's
   * rollouts), whatever else decodes at the same time, at the cost of batching across problems.
   */
  freshGenerator?: () => { generator: Generator; /** a fresh small model too, for composed methods */ small?: Generator; dispose(): void };
  onProgress?: (setting: string, done: number, total: number, record: PredictionRecord) => void;
}

function isSweep(m: ReasoningMethod | ReasoningSweep): m is ReasoningSweep {
  return (m as ReasoningSweep).solveAll !== undefined;
}

/** A method outcome as the runner records it. */
export function toSolveOutput(o: MethodOutcome): SolveOutput {
  const events = (o.extra.events as { index: number; position: number; charOffset: number; cue: string; score?: number }[] | undefined)?.map(
    (e): CueEventRecord => ({ index: e.index, position: e.position, charOffset: e.charOffset, cue: e.cue, score: e.score }),
  );
  const { events: _drop, ...extra } = o.extra;
  const baseline = o.baseline ? { tokens: o.baseline.tokens.total, decoded: o.baseline.tokens.decoded, answerText: o.baseline.answerText } : undefined;
  return { answerText: o.answerText, tokens: o.tokens, exit: o.exit, text: o.text, events, wallMs: o.wallMs, extra: { end: o.end, ...extra }, ...(baseline ? { baseline } : {}) };
}

/** The runner's units: each problem once, or `rollouts` times as `<id>#<r>`. */
function rolloutUnits(problems: readonly Problem[], rollouts: number): { units: Problem[]; source: Map<string, { problem: Problem; rollout: number }> } {
  if (!Number.isInteger(rollouts) || rollouts < 1) throw new InvalidInputError(`the rollouts per problem must be a positive integer (got ${rollouts})`);
  const source = new Map<string, { problem: Problem; rollout: number }>();
  const units: Problem[] = [];
  for (const problem of problems) {
    for (let r = 0; r < rollouts; r++) {
      const unit = rollouts === 1 ? problem : { ...problem, id: `${problem.id}#${r}` };
      source.set(unit.id, { problem, rollout: r });
      units.push(unit);
    }
  }
  return { units, source };
}

export async function evaluateMethod(opts: EvaluateOptions): Promise<RunResult[]> {
  checkRequirements(opts.method, opts.env);
  const vocab = opts.env.generator.vocab;
  const { units, source } = rolloutUnits(opts.problems, opts.rollouts ?? 1);
  const prompts = new Map<string, number[]>();
  const promptOf = (p: Problem) => {
    let t = prompts.get(p.id);
    if (!t) prompts.set(p.id, (t = problemPromptTokens(vocab, p, opts.promptStyle)));
    return t;
  };
  const m = opts.method;
  const settings = isSweep(m) ? m.settings : [m.setting];
  // One generation per problem serves every setting of a sweep; runners ask for it, the first one computes it.
  const shared = new Map<string, Promise<Map<string, MethodOutcome>>>();
  const outcomes = (p: Problem): Promise<Map<string, MethodOutcome>> => {
    let pr = shared.get(p.id);
    if (!pr) {
      const { problem, rollout } = source.get(p.id)!;
      const input = {
        problemId: problem.id,
        promptTokens: promptOf(problem),
        ...(rollout > 0 ? { rollout } : {}),
        renderPrompt: (v: Vocabulary, o?: { hint?: string }) => problemPromptTokens(v, problem, opts.promptStyle, o?.hint),
      };
      const fresh = opts.freshGenerator?.();
      const env = fresh ? { ...opts.env, generator: fresh.generator, ...(fresh.small ? { small: fresh.small } : {}) } : opts.env;
      pr = (isSweep(m) ? m.solveAll(input, env) : m.solve(input, env).then((o) => new Map([[m.setting, o]]))).finally(() => fresh?.dispose());
      shared.set(p.id, pr);
    }
    return pr;
  };
  return Promise.all(
    settings.map((setting) =>
      runEvaluation({
        problems: units,
        dir: runDir(opts.root, opts.benchmark, m.name, setting),
        benchmark: opts.benchmark,
        method: m.name,
        setting,
        grading: opts.grading,
        shard: opts.shard,
        concurrency: opts.concurrency ?? 1,
        config: {
          ...opts.config,
          model: vocab.info.path,
          ...(opts.env.small ? { small: opts.env.small.vocab.info.path } : {}),
          maxTokens: opts.env.maxTokens,
          sampler: opts.env.sampler,
          exitCue: opts.env.exitCue,
          seed: opts.env.seed,
        },
        seed: opts.env.seed,
        onProgress: opts.onProgress ? (d, t, r) => opts.onProgress!(setting, d, t, r) : undefined,
        solve: async (problem) => {
          const o = (await outcomes(problem)).get(setting);
          if (!o) throw new Error(`the ${m.name} sweep returned no outcome for setting ${setting}`);
          return toSolveOutput(o);
        },
      }),
    ),
  );
}
