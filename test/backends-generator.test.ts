/** The generator seam: methods declare what they need and are refused, before any work, by a generator without it. */
import { describe, expect, it } from 'vitest';
import type { Capabilities, Generator } from '../src/backends/generator.js';
import { requireCapabilities } from '../src/backends/generator.js';
import { checkRequirements, fullRollout, methodEnv, tokenBudget } from '../src/reasoning/method.js';
import { deer } from '../src/reasoning/peers/deer.js';
import { deepConf } from '../src/reasoning/peers/deepconf.js';
import { dynasorCot } from '../src/reasoning/peers/dynasor.js';
import { lynxMethod } from '../src/reasoning/lynx/online.js';
import type { LynxPolicy } from '../src/reasoning/lynx/online.js';
import { UnsupportedError } from '../src/util/errors.js';

function generator(caps: Partial<Capabilities>): Generator {
  return {
    name: 'test',
    capabilities: { hiddenStates: false, fork: false, logprobs: false, topLogprobs: 0, ...caps },
    vocab: undefined as never,
    capacity: () => ({ contextTokens: 0, freeSequences: 0 }),
    createSequence: () => {
      throw new Error('a refused method must not start');
    },
  };
}

const policy = { probe: {}, hiddenStateLayers: [1], rule: { rule: 'lynx', delta: 0.1 } } as unknown as LynxPolicy;

describe('generator capabilities', () => {
  it('names what is missing', () => {
    expect(() => requireCapabilities(generator({ fork: true }), ['hiddenStates', 'fork', { topLogprobs: 20 }], 'X')).toThrow(
      'X needs hidden states and top-20 log-probabilities per token, which the test generator does not provide',
    );
    expect(() => requireCapabilities(generator({ topLogprobs: 20 }), [{ topLogprobs: 20 }], 'X')).not.toThrow();
    expect(() => requireCapabilities(generator({ topLogprobs: 5 }), [{ topLogprobs: 20 }], 'X')).toThrow(UnsupportedError);
  });

  it('each method asks for what it uses', () => {
    const bare = methodEnv({ generator: generator({}) });
    expect(() => checkRequirements(fullRollout(), bare)).not.toThrow();
    expect(() => checkRequirements(tokenBudget(10), bare)).not.toThrow();
    expect(() => checkRequirements(lynxMethod(policy), bare)).toThrow(/lynx needs hidden states and sequence forks/);
    expect(() => checkRequirements(deer(), bare)).toThrow(/deer needs sequence forks and token log-probabilities/);
    expect(() => checkRequirements(dynasorCot(), bare)).toThrow(/dynasor-cot needs sequence forks/);
    expect(() => checkRequirements(deepConf(), bare)).toThrow(/deepconf-low needs sequence forks and top-20 log-probabilities/);
    const all = methodEnv({ generator: generator({ hiddenStates: true, fork: true, logprobs: true, topLogprobs: 20 }) });
    for (const m of [lynxMethod(policy), deer(), dynasorCot(), deepConf()]) expect(() => checkRequirements(m, all)).not.toThrow();
  });
});
