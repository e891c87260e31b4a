/**
 * LYNX online: while the model thinks, every cue event's hidden states (tapped in the same decode step) go through
 * the probe; when the calibrated rule says exit, the trace is cut before the cue token, the exit cue is appended and
 * the answer decoded. No second forward pass, no re-generation.
 */
import type { GeneratorSequence } from '../../backends/generator.js';
import type { TapLayer } from '../../engine/index.js';
import { InvalidInputError } from '../../util/errors.js';
import { exitCueText, forcedExit, type ForcedExitResult } from '../forced-exit.js';
import {
  outcomeOf,
  promptWork,
  traceRolloutOptions,
  withPrompt,
  type MethodEnv,
  type MethodInput,
  type MethodOutcome,
  type ReasoningMethod,
  type ReasoningSweep,
} from '../method.js';
import { runRollout, type RolloutResult, type StepDecision } from '../rollout.js';
import { CueDetector, type CueHit, type CueOptions } from './cues.js';
import { concatFeatures, tapLayersFor, type LastLayerTap } from './features.js';
import type { Probe } from './probe/probe.js';
import { ruleExits, type ExitRule } from '../calibration/conformal.js';
import { policyTaps } from './policy.js';
import type { Requirement } from '../../backends/generator.js';
import { tokenCounts } from '../token-counts.js';

/** What LYNX needs at run time: the probe, its layers, the calibrated rule and the cue words. */
export interface LynxPolicy {
  probe: Probe;
  /** Hugging Face hidden-state indices the probe was trained on (in feature order). */
  hiddenStateLayers: number[];
  /** How the last layer's feature was read when the probe's data was built. Default 'final'. */
  lastLayer?: LastLayerTap;
  rule: ExitRule;
  cues?: CueOptions['cues'];
}

/** The engine taps of a policy's features on a model of `nLayer` blocks. */
export function policyTapLayers(policy: Pick<LynxPolicy, 'hiddenStateLayers' | 'lastLayer'>, nLayer: number): TapLayer[] {
  return tapLayersFor(policy.hiddenStateLayers, nLayer, policy.lastLayer ?? 'final');
}

/** One scored cue event, as the trace viewer and the streaming CLI show it. */
export interface ScoredCueEvent {
  index: number;
  /** Generated tokens before the cue token (the forced exit cuts here). */
  position: number;
  /** Character offset of the cue word in the generated text. */
  charOffset: number;
  cue: string;
  word: string;
  /** Probe's probability that exiting here gives a correct answer. */
  score: number;
  exit: boolean;
  /** Tokens sampled when the event was scored (a cue word is confirmed by the token after it): what an exit here decoded of the trace. */
  decidedAt: number;
}

export interface LynxRunHooks {
  /** Every generated thinking token's text, as it is decoded. */
  onToken?: (piece: string) => void;
  onEvent?: (event: ScoredCueEvent) => void;
}

/** Run one problem with LYNX early exit. */
export async function solveWithLynx(policy: LynxPolicy, input: MethodInput, env: MethodEnv, hooks: LynxRunHooks = {}): Promise<MethodOutcome> {
  const t0 = performance.now();
  return withPrompt(env, input.promptTokens, async (seq) => {
    const { r, events } = await lynxTrace(policy, input, env, seq, hooks);
    const exitEvent = r.end === 'exit' ? events[events.length - 1]! : undefined;
    return outcomeOf(
      r,
      exitCueText(env.exitCue),
      exitEvent ? { event: exitEvent.index, position: exitEvent.position, cue: exitEvent.cue, score: exitEvent.score } : null,
      { events, rule: policy.rule.rule, delta: policy.rule.delta },
      performance.now() - t0,
      promptWork(input),
    );
  });
}

/** The trace of one problem on a prefilled sequence, scoring every cue event and exiting where the rule says. */
async function lynxTrace(
  policy: LynxPolicy,
  input: MethodInput,
  env: MethodEnv,
  seq: GeneratorSequence,
  hooks: LynxRunHooks,
): Promise<{ r: RolloutResult; events: ScoredCueEvent[] }> {
  const taps = policyTaps(policy, env.generator.vocab);
  const detector = new CueDetector({ cues: policy.cues });
  const captured = new Map<number, Float32Array>();
  const events: ScoredCueEvent[] = [];
  let seen = 0;
  let confirmed: readonly CueHit[] = [];

  /** Score the confirmed hits in order; the first one the rule accepts exits, cut before its token. */
  const decide = (hits: readonly CueHit[], decidedAt: number): StepDecision => {
    for (const hit of hits) {
      const features = captured.get(hit.tokenIndex);
      // Cannot happen: every hit's token was flagged for capture, and the capture is kept while its word is pending.
      if (!features) throw new Error(`LYNX: no features captured for the cue at token ${hit.tokenIndex}`);
      const score = policy.probe.predictOne(features);
      const exit = ruleExits(policy.rule, score);
      const ev: ScoredCueEvent = {
        index: events.length,
        position: hit.tokenIndex,
        charOffset: hit.charStart,
        cue: hit.cue,
        word: hit.word,
        score,
        exit,
        decidedAt,
      };
      events.push(ev);
      hooks.onEvent?.(ev);
      if (exit) return { action: 'exit', cut: hit.tokenIndex, info: { event: ev.index, score, cue: hit.cue } };
    }
    return { action: 'continue' };
  };

  {
    const r = await runRollout(seq, {
      ...traceRolloutOptions(env, input),
      tapLayers: taps,
      // A later exit cuts at the pending cue word's token at the earliest, else at the next token.
      commitHorizon: () => detector.pending?.tokenIndex ?? detector.tokenCount,
      // Called once per token, after sampling and before decoding: the detector sees the token's text and says
      // whether this token may complete a cue, so its hidden state is captured in this very decode step.
      tapWhen: (_token, text) => {
        const piece = text.slice(seen);
        seen = text.length;
        confirmed = detector.push(piece);
        return detector.capturesLastToken;
      },
      onStep: (step): StepDecision => {
        hooks.onToken?.(step.piece);
        if (step.hidden) captured.set(step.index, concatFeatures(step.hidden, taps));
        const d = decide(confirmed, step.index + 1);
        confirmed = [];
        // Keep only the capture a later confirmation may still need: the pending cue word's. (Not "the last two
        // tokens": tokens with empty text, e.g. the first bytes of a UTF-8 character, can delay a confirmation.)
        const keep = detector.pending?.tokenIndex;
        for (const k of captured.keys()) if (k !== keep) captured.delete(k);
        return d;
      },
      // Every cue event of the thinking is a decision point (and a dataset event), including a word that only the end
      // of the thinking completes (`wait</think>`, or a cue in the last token when the model stops or the budget runs
      // out; `onStep` never sees these confirmations): decide there too, exactly as simulate replays them.
      onThinkingEnd: (end): StepDecision => {
        // A model that stopped has sampled its end-of-sequence token too.
        const sampled = end.tokens + (end.reason === 'stopped' ? 1 : 0);
        const d = decide(confirmed, sampled);
        confirmed = [];
        return d.action === 'continue' ? decide(detector.finish(), sampled) : d;
      },
    });
    return { r, events };
  }
}

/** The probe reads hidden states at every cue event; a δ sweep decodes each rule's answer on a fork. */
const LYNX_NEEDS: readonly Requirement[] = ['hiddenStates', 'fork'];

/** LYNX as a ReasoningMethod for the evaluation harness. */
export function lynxMethod(policy: LynxPolicy, hooks: LynxRunHooks = {}): ReasoningMethod {
  return {
    name: policy.rule.rule === 'lynx' ? 'lynx' : `lynx-${policy.rule.rule}`,
    setting: `delta=${policy.rule.delta}`,
    requires: LYNX_NEEDS,
    solve: (input, env) => solveWithLynx(policy, input, env, hooks),
  };
}

/**
 * Several calibrated rules of one probe (a δ sweep) from one generation per problem: the probe never feeds back into
 * the trace, so with the same seed every rule's trace is the full rollout's up to its exit. The full rollout is
 * generated once with every event scored; each rule exits at its first accepted event, and the answer is decoded from
 * a fork at that cut (shared between rules that exit at the same event). Each outcome equals `solveWithLynx` with
 * that rule (same exit, tokens and answer); its wall time is the time to the exit event plus the forced exit.
 */
export function lynxSweep(policies: readonly LynxPolicy[]): ReasoningSweep {
  if (policies.length === 0) throw new InvalidInputError('a LYNX sweep needs at least one calibrated rule');
  const first = policies[0]!;
  for (const p of policies) {
    if (p.probe !== first.probe || p.rule.rule !== first.rule.rule) {
      throw new InvalidInputError('a LYNX sweep runs the rules of one probe and one rule family (lynx, ltt or crc) at several deltas');
    }
  }
  const method = lynxMethod(first);
  const neverExit: LynxPolicy = { ...first, rule: { ...first.rule, rule: 'crc', threshold: null } as ExitRule };
  return {
    name: method.name,
    requires: LYNX_NEEDS,
    settings: policies.map((p) => `delta=${p.rule.delta}`),
    async solveAll(input, env) {
      const t0 = performance.now();
      const eventMs: number[] = [];
      return withPrompt(env, input.promptTokens, async (seq) => {
        const promptLength = seq.length;
        const { r, events } = await lynxTrace(neverExit, input, env, seq, { onEvent: () => eventMs.push(performance.now() - t0) });
        const fullMs = performance.now() - t0;
        const cueText = exitCueText(env.exitCue);
        // The full rollout, generated anyway: every setting's record carries it (LYNX's baseline, help and harm).
        const full = outcomeOf(r, cueText, null, {}, fullMs, promptWork(input));
        const baseline = { tokens: full.tokens, answerText: full.answerText };
        const exits = new Map<number, { answer: ForcedExitResult; ms: number }>();
        const out = new Map<string, MethodOutcome>();
        for (const p of policies) {
          const setting = `delta=${p.rule.delta}`;
          const k = events.findIndex((e) => ruleExits(p.rule, e.score));
          const marked = (upTo: number) => events.slice(0, upTo).map((e, i) => ({ ...e, exit: i === k }));
          if (k < 0) {
            out.set(setting, { ...outcomeOf(r, cueText, null, { events: marked(events.length), rule: p.rule.rule, delta: p.rule.delta }, fullMs, promptWork(input)), baseline });
            continue;
          }
          const ev = events[k]!;
          let x = exits.get(k);
          if (!x) {
            const t1 = performance.now();
            const answer = await forcedExit(seq, {
              cue: env.exitCue,
              maxTokens: env.answerMaxTokens ?? 64,
              accounting: env.exitAccounting,
              at: promptLength + ev.position,
              mode: 'fork',
            });
            x = { answer, ms: eventMs[k]! + (performance.now() - t1) };
            exits.set(k, x);
          }
          const tokens = r.tokens.slice(0, ev.position);
          const reasoning = tokens.length;
          out.set(setting, {
            answerText: cueText + x.answer.text,
            answer: x.answer.answer,
            text: env.generator.vocab.detokenize(tokens),
            traceTokens: tokens,
            end: 'exit',
            // As a direct run with this rule: the trace up to the decision, the exit cue, the answer.
            tokens: tokenCounts(reasoning, x.answer.cueTokens, x.answer.answerTokens, {
              decoded: ev.decidedAt + x.answer.answerTokens,
              prefilled: input.promptTokens.length + x.answer.cueTokens,
            }),
            exit: { event: ev.index, position: ev.position, cue: ev.cue, score: ev.score },
            wallMs: x.ms,
            extra: { end: 'exit', events: marked(k + 1), rule: p.rule.rule, delta: p.rule.delta },
            baseline,
          });
        }
        return out;
      });
    },
  };
}
