/**
 * LYNX online: while the model thinks, every cue event's hidden states (tapped in the same decode step) go through
 * the probe; when the calibrated rule says exit, the trace is cut before the cue token, the exit cue is appended and
 * the answer decoded. No second forward pass, no re-generation.
 */
import type { TapLayer } from '../../engine/index.js';
import { exitCueText } from '../forced-exit.js';
import { outcomeOf, traceRolloutOptions, withPrompt, type MethodEnv, type MethodInput, type MethodOutcome, type ReasoningMethod } from '../method.js';
import { runRollout, type StepDecision } from '../rollout.js';
import { CueDetector, type CueHit, type CueOptions } from './cues.js';
import { concatFeatures, tapLayersFor } from './features.js';
import type { Probe } from './probe.js';
import { ruleExits, type ExitRule } from './conformal.js';

/** What LYNX needs at run time: the probe, its layers, the calibrated rule and the cue words. */
export interface LynxPolicy {
  probe: Probe;
  /** Hugging Face hidden-state indices the probe was trained on (in feature order). */
  hiddenStateLayers: number[];
  rule: ExitRule;
  cues?: CueOptions['cues'];
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
}

export interface LynxRunHooks {
  /** Every generated thinking token's text, as it is decoded. */
  onToken?: (piece: string) => void;
  onEvent?: (event: ScoredCueEvent) => void;
}

/** Run one problem with LYNX early exit. */
export async function solveWithLynx(policy: LynxPolicy, input: MethodInput, env: MethodEnv, hooks: LynxRunHooks = {}): Promise<MethodOutcome> {
  const t0 = performance.now();
  const nLayer = env.model.info.nLayer;
  const taps: TapLayer[] = tapLayersFor(policy.hiddenStateLayers, nLayer);
  if (policy.probe.nFeatures !== taps.length * env.model.info.nEmbd) {
    throw new RangeError(
      `the probe expects ${policy.probe.nFeatures} features but ${taps.length} layers x ${env.model.info.nEmbd} = ` +
        `${taps.length * env.model.info.nEmbd}: was it trained on another model?`,
    );
  }
  const detector = new CueDetector({ cues: policy.cues });
  const captured = new Map<number, Float32Array>();
  const events: ScoredCueEvent[] = [];
  let seen = 0;
  let confirmed: readonly CueHit[] = [];

  /** Score the confirmed hits in order; the first one the rule accepts exits, cut before its token. */
  const decide = (hits: readonly CueHit[]): StepDecision => {
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
      };
      events.push(ev);
      hooks.onEvent?.(ev);
      if (exit) return { action: 'exit', cut: hit.tokenIndex, info: { event: ev.index, score, cue: hit.cue } };
    }
    return { action: 'continue' };
  };

  return withPrompt(env, input.promptTokens, async (seq) => {
    const r = await runRollout(seq, {
      ...traceRolloutOptions(env, input.problemId),
      tapLayers: taps,
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
        const d = decide(confirmed);
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
      onThinkingEnd: (): StepDecision => {
        const d = decide(confirmed);
        confirmed = [];
        return d.action === 'continue' ? decide(detector.finish()) : d;
      },
    });
    const exitEvent = r.end === 'exit' ? events[events.length - 1]! : undefined;
    return outcomeOf(
      r,
      exitCueText(env.exitCue),
      exitEvent ? { event: exitEvent.index, position: exitEvent.position, cue: exitEvent.cue, score: exitEvent.score } : null,
      { events, rule: policy.rule.rule, delta: policy.rule.delta },
      performance.now() - t0,
    );
  });
}

/** LYNX as a ReasoningMethod for the evaluation harness. */
export function lynxMethod(policy: LynxPolicy, hooks: LynxRunHooks = {}): ReasoningMethod {
  return {
    name: policy.rule.rule === 'lynx' ? 'lynx' : `lynx-${policy.rule.rule}`,
    setting: `delta=${policy.rule.delta}`,
    solve: (input, env) => solveWithLynx(policy, input, env, hooks),
  };
}
