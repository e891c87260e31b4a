/**
 * Drafting with a second, smaller model of the same vocabulary (classic speculative decoding, llama.cpp's
 * `--model-draft`): the draft model keeps a sequence of its own in its own context, brought in line with the target
 * before each prediction (the tokens the target accepted since, then the pending token), and decodes one token per
 * draft. A truncated copy of the target (its first K+1 blocks and an early-exit head as its output, see
 * `lynx heads draft-model`) is such a model too: the fallback for self-drafting where a partial-depth decode does not
 * stop early (a graph split over several devices).
 */
import type { LlamaContext } from '../context.js';
import { LynxEngineUsageError } from '../errors.js';
import { argmax } from '../sampler.js';
import type { Sequence } from '../sequence.js';
import { entropy } from './distribution.js';
import type { DraftToken, PredictionRequest, PredictorFactory, TokenPredictor } from './predictor.js';

export interface DraftModelOptions {
  /** A context on the draft model, with a free sequence slot for each generation drafting at once. */
  context: LlamaContext;
  /** Stop drafting once the draft model's entropy (nats) exceeds this. Default Infinity. */
  entropyStop?: number;
}

/** Refuse a draft model whose vocabulary is not the target's: its token ids would mean other text. */
export function checkSameVocabulary(target: Sequence['vocab'], draft: Sequence['vocab']): void {
  const a = target.info;
  const b = draft.info;
  const probe = [0, 1, Math.floor(a.nVocab / 2), a.nVocab - 1].filter((t) => t < b.nVocab);
  const same = a.nVocab === b.nVocab && probe.every((t) => Buffer.compare(Buffer.from(target.tokenBytes(t)), Buffer.from(draft.tokenBytes(t))) === 0);
  if (!same) {
    throw new LynxEngineUsageError(`the draft model ${b.path} does not share the vocabulary of ${a.path} (${b.nVocab} and ${a.nVocab} tokens): use a draft model of the same family`);
  }
}

export function draftModelPredictor(o: DraftModelOptions): PredictorFactory {
  const stopAbove = o.entropyStop ?? Infinity;
  return (target) => {
    checkSameVocabulary(target.vocab, o.context.model);
    let own: Sequence | undefined;
    const predictor: TokenPredictor = {
      name: `model:${o.context.model.info.name ?? o.context.model.info.path}`,
      async predict(req: PredictionRequest): Promise<DraftToken[]> {
        const { max, draw, signal } = req;
        own ??= o.context.createSequence();
        const want = req.target.tokens;
        const have = own.tokens;
        let common = 0;
        while (common < have.length && common < want.length && have[common] === want[common]) common++;
        if (common < have.length) own.truncate(common);
        if (common < want.length) await own.append(want.slice(common), { signal });
        let logits = (await own.extend([req.pending], { signal })).rows;
        const drafts: DraftToken[] = [];
        for (let i = 0; i < max; i++) {
          if (stopAbove < Infinity && entropy(logits) > stopAbove) break;
          const d = draw ? draw(logits) : { token: argmax(logits) };
          drafts.push(d);
          if (i + 1 < max) logits = (await own.extend([d.token], { signal })).rows;
        }
        return drafts;
      },
      dispose() {
        own?.dispose();
        own = undefined;
      },
    };
    return predictor;
  };
}
