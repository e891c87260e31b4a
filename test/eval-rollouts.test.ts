/**
 * Several rollouts per problem (LYNX's `--test-rollouts`): each problem runs N times, recorded as `<id>#<r>`, rollout r's
 * main trace seeded as the dataset builder's rollout r (so online and simulated runs cover the same traces) and its
 * other traces and probes with seeds of their own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Generator } from '../src/backends/generator.js';
import { evaluateMethod } from '../src/eval/evaluate-method.js';
import { splitRolloutId } from '../src/eval/lynx-run-files.js';
import { inputSeed, methodEnv, traceKey, traceRolloutOptions, traceSampler, traceSeed, type MethodInput, type ReasoningMethod } from '../src/reasoning/method.js';
import { tokenCounts } from '../src/reasoning/token-counts.js';

const tmp = mkdtempSync(join(tmpdir(), 'lynx-rollouts-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const vocab = {
  info: { path: 'fake.gguf', chatTemplate: '{% for m in messages %}{{ m.content }}{% endfor %}', special: {} },
  tokenize: (s: string) => Array.from(s, (c) => c.charCodeAt(0)),
  detokenize: (t: number[]) => String.fromCharCode(...t),
};
const generator = { name: 'fake', capabilities: { hiddenStates: false, fork: false, logprobs: false, topLogprobs: 0 }, vocab } as unknown as Generator;

describe('test rollouts', () => {
  it('run each problem N times as <id>#<r>, with rollout r seeded as the dataset builder seeds rollout r', async () => {
    const env = methodEnv({ generator, seed: 5 });
    const inputs: MethodInput[] = [];
    const method: ReasoningMethod = {
      name: 'probe-inputs',
      setting: 'x',
      async solve(input) {
        inputs.push(input);
        const seed = traceRolloutOptions(env, input).sampler.seed!;
        return { answerText: `\\boxed{${seed}}`, text: '', traceTokens: [], end: 'natural', tokens: tokenCounts(1, 0, 1, { decoded: 2, prefilled: 3 }), exit: null, wallMs: 1, extra: {} };
      },
    };
    const problems = [
      { id: 'p1', benchmark: 'fake', problem: 'one', gold: '1', meta: {} },
      { id: 'p2', benchmark: 'fake', problem: 'two', gold: '2', meta: {} },
    ];
    const [run] = await evaluateMethod({ problems, rollouts: 3, benchmark: 'fake', root: tmp, method, env });
    expect(run!.predictions.map((p) => p.id)).toEqual(['p1#0', 'p1#1', 'p1#2', 'p2#0', 'p2#1', 'p2#2']);
    expect(run!.predictions.map((p) => splitRolloutId(p.id))).toContainEqual({ problemId: 'p2', rollout: 1 });
    expect(inputs.map((i) => [i.problemId, i.rollout ?? 0]).sort()).toEqual([['p1', 0], ['p1', 1], ['p1', 2], ['p2', 0], ['p2', 1], ['p2', 2]]);
    for (const p of run!.predictions) {
      const { problemId, rollout } = splitRolloutId(p.id);
      // The dataset builder samples rollout r of a problem with traceSampler(env, id, r).
      expect(p.extracted).toBe(String(traceSampler(env, problemId, rollout).seed));
    }
    // One rollout: plain ids, rollout 0's seeds as before rollouts existed.
    const [one] = await evaluateMethod({ problems, benchmark: 'fake1', root: tmp, method, env });
    expect(one!.predictions.map((p) => p.id)).toEqual(['p1', 'p2']);
    expect(one!.predictions[0]!.extracted).toBe(String(traceSeed(env, 'p1', 0)));
  });

  it("gives each rollout's extra traces and probes seeds of their own", () => {
    expect(traceKey({}, 0)).toBe(0);
    expect(traceKey({}, 'probe3')).toBe('probe3');
    expect(traceKey({ rollout: 2 }, 0)).toBe(2);
    expect(traceKey({ rollout: 2 }, 'probe3')).toBe('2:probe3');
    const seeds = new Set<number>();
    for (const rollout of [0, 1, 2]) for (const t of ['probe0', 'trial0', 1, 2]) seeds.add(inputSeed({ seed: 1 }, { problemId: 'p', rollout }, t));
    expect(seeds.size).toBe(12);
  });
});
