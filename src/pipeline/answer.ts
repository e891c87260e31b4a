/** `lynx run`: one question answered with LYNX early exit, the reasoning and every scored cue event streamed. */
import { LlamaContext, type LlamaModel } from '../engine/index.js';
import { methodEnv, type MethodOutcome } from '../reasoning/method.js';
import { loadLynxPolicy } from '../reasoning/lynx/policy.js';
import { solveWithLynx, type LynxPolicy, type LynxRunHooks } from '../reasoning/lynx/online.js';
import { problemPromptTokens } from '../reasoning/prompt-tokens.js';
import { extractAnswer } from '../tasks/answer-extract.js';
import { openModel } from './model.js';
import type { SamplerOptions } from '../engine/index.js';

export interface AnswerOptions extends LynxRunHooks {
  /** A loaded model, or a GGUF file / Hugging Face folder to load (and dispose at the end). */
  model: LlamaModel | string;
  /** Experiment folder (with probe/ and conformal/) or a probe folder. */
  probe: string;
  rule: string;
  delta: number;
  /** The question; sent through the zst prompt and the model's chat template. */
  question: string;
  maxTokens: number;
  sampler: SamplerOptions;
  seed: number;
  exitCue: string;
}

export async function answerWithLynx(o: AnswerOptions): Promise<{ answer: string | null; outcome: MethodOutcome; policy: LynxPolicy }> {
  const policy = loadLynxPolicy(o.probe, { rule: o.rule, delta: o.delta });
  const model = typeof o.model === 'string' ? await openModel(o.model) : o.model;
  // Batch-invariant numerics, as `lynx serve` decodes: the same seed gives the same trace here and there.
  const context = new LlamaContext(model, { nCtx: o.maxTokens + 1024, nSeqMax: 2, kvType: 'f32', flashAttention: false });
  try {
    const env = methodEnv({ context, sampler: o.sampler, maxTokens: o.maxTokens, exitCue: o.exitCue, seed: o.seed });
    const promptTokens = problemPromptTokens(model, { problem: o.question }, 'zst');
    const outcome = await solveWithLynx(policy, { problemId: 'prompt', promptTokens }, env, { onToken: o.onToken, onEvent: o.onEvent });
    return { answer: extractAnswer(outcome.answerText, {}).answer, outcome, policy };
  } finally {
    context.dispose();
    if (typeof o.model === 'string') model.dispose();
  }
}
