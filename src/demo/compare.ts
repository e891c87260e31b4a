/**
 * `lynx demo`: the same problems answered twice by the same model with the same sampling seed — once thinking to
 * the end (the baseline), once with LYNX early exit — so the tokens saved and the answers can be compared one to one.
 * With the same seed the early-exit trace is the baseline's trace up to the exit (each run alone in a fresh exact-mode
 * context), so every saved token is a token the baseline spent after the exit point.
 */
import { LlamaContext, type LlamaModel } from '../engine/index.js';
import { forEachConcurrent } from '../util/concurrency.js';
import type { Problem } from '../tasks/problem.js';
import { extractAnswer } from '../tasks/answer-extract.js';
import { answersEquivalentSync } from '../tasks/answer-equiv.js';
import { fullRollout, methodEnv, type MethodEnv, type MethodOutcome } from '../reasoning/method.js';
import { problemPromptTokens } from '../reasoning/prompt-tokens.js';
import { solveWithLynx, type LynxPolicy, type ScoredCueEvent } from '../reasoning/lynx/online.js';

export interface DemoCompareOptions {
  model: LlamaModel;
  policy: LynxPolicy;
  problems: readonly Problem[];
  seed?: number;
  temperature?: number;
  topP?: number;
  maxTokens?: number;
  /** Problems solved at once (their sequences decode together). Default 4. */
  concurrency?: number;
  onProblem?: (r: DemoProblemResult, done: number, total: number) => void;
}

export interface DemoAnswer {
  answer: string | null;
  correct: boolean;
  /** reasoning + exit cue + answer tokens */
  tokens: number;
  reasoningTokens: number;
  wallMs: number;
}

export interface DemoProblemResult {
  id: string;
  problem: string;
  gold: string;
  level?: number;
  baseline: DemoAnswer;
  earlyExit: DemoAnswer & {
    exit: { event: number; position: number; cue?: string; score?: number } | null;
    events: Pick<ScoredCueEvent, 'index' | 'position' | 'cue' | 'score' | 'exit'>[];
  };
  /** baseline tokens - early-exit tokens */
  tokensSaved: number;
}

export interface DemoSummary {
  problems: number;
  rule: string;
  delta: number;
  baselineAccuracy: number;
  earlyExitAccuracy: number;
  baselineAvgTokens: number;
  earlyExitAvgTokens: number;
  /** 1 - early-exit tokens / baseline tokens, over all problems */
  tokenSavings: number;
  exitRate: number;
  /** Problems right at the end but wrong after the early exit, and the reverse. */
  harmed: number;
  helped: number;
  baselineWallSec: number;
  earlyExitWallSec: number;
}

function scored(o: MethodOutcome, p: Problem): DemoAnswer {
  const answer = extractAnswer(o.answerText, p).answer;
  return {
    answer,
    correct: answersEquivalentSync(answer, p.gold, { grading: 'zst' }).equivalent,
    tokens: o.tokens.total,
    reasoningTokens: o.tokens.reasoning,
    wallMs: o.wallMs,
  };
}

export async function compareWithBaseline(opts: DemoCompareOptions): Promise<{ results: DemoProblemResult[]; summary: DemoSummary }> {
  const { model, policy, problems } = opts;
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  const maxTokens = opts.maxTokens ?? 1024;
  const prompts = problems.map((p) => problemPromptTokens(model, p));
  // Each run gets a fresh context of its own (F32 K/V, no flash attention): llama.cpp places a sequence's KV cells
  // according to what else is in the cache, which changes float rounding, and over hundreds of sampled tokens that can
  // flip a token. Alone in a fresh context, the early-exit run is token for token the baseline until its exit.
  // (llama_decode calls are synchronous, so the contexts decode one at a time, each with every thread.)
  const fresh = async <T>(promptLength: number, fn: (env: MethodEnv) => Promise<T>): Promise<T> => {
    const context = new LlamaContext(model, { nCtx: promptLength + maxTokens + 160, nSeqMax: 2, kvType: 'f32', flashAttention: false });
    try {
      return await fn(
        methodEnv({ context, sampler: { temperature: opts.temperature ?? 0.6, topP: opts.topP ?? 0.95 }, maxTokens, seed: opts.seed ?? 0 }),
      );
    } finally {
      context.dispose();
    }
  };
  const baseline = fullRollout();
  const results: DemoProblemResult[] = new Array(problems.length);
  let done = 0;
  await forEachConcurrent(problems.length, concurrency, async (i) => {
    const p = problems[i]!;
    const input = { problemId: p.id, promptTokens: prompts[i]! };
    const full = await fresh(input.promptTokens.length, (env) => baseline.solve(input, env));
    const early = await fresh(input.promptTokens.length, (env) => solveWithLynx(policy, input, env));
    const b = scored(full, p);
    const e = scored(early, p);
    const events = (early.extra.events as ScoredCueEvent[]).map(({ index, position, cue, score, exit }) => ({ index, position, cue, score, exit }));
    results[i] = {
      id: p.id,
      problem: p.problem,
      gold: p.gold,
      level: typeof p.meta?.level === 'number' ? p.meta.level : undefined,
      baseline: b,
      earlyExit: { ...e, exit: early.exit, events },
      tokensSaved: b.tokens - e.tokens,
    };
    opts.onProblem?.(results[i]!, ++done, problems.length);
  });
  return { results, summary: summarize(results, policy) };
}

export function summarize(results: readonly DemoProblemResult[], policy: Pick<LynxPolicy, 'rule'>): DemoSummary {
  const n = Math.max(1, results.length);
  const sum = (f: (r: DemoProblemResult) => number) => results.reduce((a, r) => a + f(r), 0);
  const baseTokens = sum((r) => r.baseline.tokens);
  const earlyTokens = sum((r) => r.earlyExit.tokens);
  return {
    problems: results.length,
    rule: policy.rule.rule,
    delta: policy.rule.delta,
    baselineAccuracy: sum((r) => +r.baseline.correct) / n,
    earlyExitAccuracy: sum((r) => +r.earlyExit.correct) / n,
    baselineAvgTokens: baseTokens / n,
    earlyExitAvgTokens: earlyTokens / n,
    tokenSavings: baseTokens > 0 ? 1 - earlyTokens / baseTokens : 0,
    exitRate: sum((r) => +(r.earlyExit.exit !== null)) / n,
    harmed: sum((r) => +(r.baseline.correct && !r.earlyExit.correct)),
    helped: sum((r) => +(!r.baseline.correct && r.earlyExit.correct)),
    baselineWallSec: sum((r) => r.baseline.wallMs) / 1000,
    earlyExitWallSec: sum((r) => r.earlyExit.wallMs) / 1000,
  };
}
