/**
 * The streamed trace (what `lynx serve` sends while a method runs): for every method it is exactly the final trace
 * (the kept tokens' text, then the exit cue and the answer), so nothing a client was sent is ever taken back by an
 * exit. Run on the shipped demo reasoner, whose traces have real cue words where LYNX and DEER exit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaContext, LlamaModel } from '../src/engine/index.js';
import { shippedDemo } from '../src/demo/shipped.js';
import { fullRollout, methodEnv, tokenBudget, type MethodOutcome, type ReasoningMethod } from '../src/reasoning/method.js';
import { lynxMethod } from '../src/reasoning/lynx/online.js';
import { loadLynxPolicy } from '../src/reasoning/lynx/policy.js';
import { deer, LiteralCueFinder } from '../src/reasoning/peers/deer.js';
import { dynasorCot } from '../src/reasoning/peers/dynasor.js';
import { problemPromptTokens } from '../src/reasoning/prompt-tokens.js';
import { loadBenchmark } from '../src/tasks/registry.js';

let model: LlamaModel;
let context: LlamaContext;
const demo = shippedDemo();

beforeAll(() => {
  model = LlamaModel.load(demo.model);
  context = new LlamaContext(model, { nCtx: 8192, nSeqMax: 8, threads: 1, kvType: 'f32', flashAttention: false });
});
afterAll(() => {
  context?.dispose();
  model?.dispose();
});

/** Solve with streaming on; return the outcome and what was streamed. */
async function streamed(method: ReasoningMethod, problem: string, id: string): Promise<{ o: MethodOutcome; text: string }> {
  let text = '';
  const env = methodEnv({ context, maxTokens: 400, seed: 5, onText: (piece) => (text += piece) });
  const o = await method.solve({ problemId: id, promptTokens: problemPromptTokens(model, { problem }) }, env);
  return { o, text };
}

/** The final trace as a reader sees it. */
const finalTrace = (o: MethodOutcome) => o.text + (o.tokens.exitCue > 0 ? o.answerText : '');

describe('the streamed trace', () => {
  const problems = loadBenchmark('demo', { limit: 8 });

  it('is the final trace for every method, exits included', async () => {
    const policy = loadLynxPolicy(demo.root, { rule: 'lynx', delta: 0.3 });
    const methods = [fullRollout(), tokenBudget(40), lynxMethod(policy), deer({ threshold: 0.5 }), dynasorCot({ interval: 24 })];
    const ends = new Map<string, Set<string>>();
    for (const m of methods) {
      for (const p of problems) {
        const { o, text } = await streamed(m, p.problem, p.id);
        expect({ method: m.name, id: p.id, text }).toEqual({ method: m.name, id: p.id, text: finalTrace(o) });
        (ends.get(m.name) ?? ends.set(m.name, new Set()).get(m.name)!).add(o.exit ? 'exit' : o.end);
      }
    }
    // The check covered real exits (cut traces) and natural ends.
    for (const name of ['lynx', 'deer', 'budget']) expect(ends.get(name)!.has('exit')).toBe(true);
    expect(ends.get('full')!.has('natural')).toBe(true);
  });

  it('an aborted rollout stops with the signal’s reason', async () => {
    const controller = new AbortController();
    let pieces = 0;
    const env = methodEnv({
      context,
      maxTokens: 400,
      seed: 5,
      signal: controller.signal,
      onText: () => {
        if (++pieces === 10) controller.abort(new Error('client went away'));
      },
    });
    await expect(fullRollout().solve({ problemId: 'x', promptTokens: problemPromptTokens(model, { problem: problems[0]!.problem }) }, env)).rejects.toThrow(
      'client went away',
    );
    expect(pieces).toBe(10);
    expect(context.freeSlots).toBe(context.nSeqMax);
  });
});

describe("DEER's literal cue finder horizon", () => {
  it('holds back the tokens where a cue may still begin, and releases them once ruled out', () => {
    const f = new LiteralCueFinder(['Wait']);
    expect(f.push('So 4. ')).toBeNull(); // token 0: chars 0-5
    expect(f.horizon()).toBe(0); // "Wait" could start in its last 3 characters
    expect(f.push('Hmm, ')).toBeNull(); // token 1: chars 6-10
    expect(f.horizon()).toBe(1); // token 0 is final now
    expect(f.push('W')).toBeNull(); // token 2
    expect(f.horizon()).toBe(1);
    const hit = f.push('ait');
    expect(hit?.tokenIndex).toBe(2); // the judge point cuts before 'W': at or after the horizon it reported
  });
});
