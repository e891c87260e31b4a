/**
 * Any method over a big/small composition: `composeMethod(splitPolicy())` is SplitReason's offloading (a full rollout
 * of the composed trace), `composeMethod(splitPolicy(), lynxMethod(policy))` is LYNX early exit on top of it, with the
 * probe reading the small model's hidden states, a combination none of the anchors has.
 *
 * Per problem, a `ComposedGenerator` over `env.small` and `env.generator` (the big model) stands in for the generator;
 * the method runs unchanged on it, and its outcome's `extra.compose` says what each model did (`ComposeStats`).
 */
import { requireCapabilities, type Generator, type Requirement } from '../../backends/generator.js';
import { InvalidInputError } from '../../util/errors.js';
import { fullRollout, traceSeed, type MethodEnv, type MethodInput, type MethodOutcome, type ReasoningMethod, type ReasoningSweep } from '../method.js';
import { addWork } from '../token-counts.js';
import { ComposedGenerator, sameVocabulary } from './composed-generator.js';
import type { CompositionPolicy } from './policy.js';

function isSweep(m: ReasoningMethod | ReasoningSweep): m is ReasoningSweep {
  return (m as ReasoningSweep).solveAll !== undefined;
}

/** What the big model must provide when the inner method needs `req` of the composed generator. */
const FROM_BIG: ReadonlySet<string> = new Set(['fork', 'logprobs']);

function union(a: readonly Requirement[], b: readonly Requirement[]): Requirement[] {
  const key = (r: Requirement) => (typeof r === 'string' ? r : `top${r.topLogprobs}`);
  const seen = new Map<string, Requirement>();
  for (const r of [...a, ...b]) seen.set(key(r), r);
  return [...seen.values()];
}

/** The prompts of a problem for the two models; the small's carries the policy's hint when the caller can render it. */
function promptsOf(input: MethodInput, small: Generator, big: Generator, hint: string | undefined): { small: number[]; big: number[] } {
  if (input.renderPrompt) return { big: input.renderPrompt(big.vocab), small: input.renderPrompt(small.vocab, hint === undefined ? undefined : { hint }) };
  // Only tokens of the big model's prompt: the small reads the same text (without the hint: there is no problem to put it in).
  const smallTokens = sameVocabulary(small.vocab, big.vocab)
    ? input.promptTokens
    : small.vocab.tokenize(big.vocab.detokenize(input.promptTokens), { addSpecial: false, parseSpecial: true });
  return { big: input.promptTokens, small: smallTokens };
}

/** A method (default: the full rollout) run on the big/small composition the policy describes. */
export function composeMethod(policy: CompositionPolicy, inner: ReasoningMethod | ReasoningSweep = fullRollout()): ReasoningMethod | ReasoningSweep {
  const alone = !isSweep(inner) && inner.name === 'full';
  const name = alone ? policy.name : `${policy.name}+${inner.name}`;
  const innerRequires = inner.requires ?? [];
  const requires = policy.usesBig ? union(policy.requiresBig ?? [], innerRequires.filter((r) => typeof r !== 'string' || FROM_BIG.has(r))) : [];
  const requiresSmall = union(policy.requiresSmall, innerRequires);
  const setting = (s: string) => (alone ? policy.setting : `${policy.setting},${s}`);

  const prepare = (input: MethodInput, env: MethodEnv) => {
    if (!env.small) throw new InvalidInputError(`${name} composes a small model with the big one: give the small model (--small SMALL)`);
    const prompts = promptsOf(input, env.small, env.generator, policy.promptHint);
    const generator = new ComposedGenerator({ small: env.small, big: env.generator, policy, seed: traceSeed(env, input.problemId, 'compose'), prompts });
    requireCapabilities(generator, innerRequires, name);
    return { generator, input: { problemId: input.problemId, promptTokens: prompts.small }, env: { ...env, generator } };
  };
  // Each model's work as the composition measured it; the outcome's decoded and prefilled tokens are their sums (both
  // models read a prompt, the big one reads the small one's text and the other way round).
  const withStats = (o: MethodOutcome, generator: ComposedGenerator): MethodOutcome => {
    const stats = generator.stats(o.traceTokens.length);
    const models = { small: { decoded: stats.small.decoded, prefilled: stats.small.prefilled }, big: { decoded: stats.big.decoded, prefilled: stats.big.prefilled } };
    const work = addWork(models.small, models.big);
    return { ...o, tokens: { ...o.tokens, ...work, models }, extra: { ...o.extra, compose: stats } };
  };

  if (isSweep(inner)) {
    return {
      name,
      settings: inner.settings.map(setting),
      requires,
      requiresSmall,
      async solveAll(input, env) {
        const p = prepare(input, env);
        const outcomes = await inner.solveAll(p.input, p.env);
        return new Map([...outcomes].map(([s, o]) => [setting(s), withStats(o, p.generator)]));
      },
    };
  }
  return {
    name,
    setting: setting(inner.setting),
    requires,
    requiresSmall,
    async solve(input, env) {
      const p = prepare(input, env);
      return withStats(await inner.solve(p.input, p.env), p.generator);
    },
  };
}
