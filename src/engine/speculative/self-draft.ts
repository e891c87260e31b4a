/**
 * Self-speculative drafting: the model's own first blocks and an early-exit head draft the next tokens, with no
 * second copy of the weights. Each draft step decodes one token through blocks 0..K only (a partial-depth decode,
 * DepthExit: llama.cpp's graph is stopped after `l_out-K`), the head turns that hidden state into logits, and the
 * draft is their argmax (or a draw, for the rejection rule). Drafting stops early where the head is unsure: at an
 * entropy above `entropyStop` (a calibrated threshold: where the head agrees with the full model at the chosen rate).
 * The KV cells the draft steps wrote (blocks 0..K of the drafted positions) are removed before the verification
 * decodes those positions again at full depth.
 */
import { argmax } from '../sampler.js';
import { DecodeError } from '../errors.js';
import { entropy } from './distribution.js';
import { fullVocabularyLogits, type DraftToken, type LayerHead, type PredictionRequest, type PredictorFactory, type TokenPredictor } from './predictor.js';

export interface SelfDraftOptions {
  head: LayerHead;
  /** Stop drafting once the head's entropy (nats) exceeds this. Default Infinity: always draft the maximum. */
  entropyStop?: number;
}

export function selfDraftPredictor(o: SelfDraftOptions): PredictorFactory {
  const stopAbove = o.entropyStop ?? Infinity;
  return () => {
    const counters = { partialDecodes: 0, partialStopsIgnored: 0 };
    const predictor: TokenPredictor = {
      name: `heads@${o.head.layer}`,
      counters,
      async predict(req: PredictionRequest): Promise<DraftToken[]> {
        const { target, max, draw, signal } = req;
        const at = target.length;
        const drafts: DraftToken[] = [];
        let token = req.pending;
        try {
          for (let i = 0; i < max; i++) {
            const r = await target.probe([token], at + i, { layers: [o.head.layer] }, signal);
            counters.partialDecodes++;
            if (r.exitedAt !== o.head.layer) throw new DecodeError(`the partial decode never reached block ${o.head.layer} (no tensor l_out-${o.head.layer} in the graph)`);
            if (r.stopHeld === false) counters.partialStopsIgnored++;
            const logits = o.head.logits(r.hidden!.get(o.head.layer)!);
            // A partial head's entropy is its own distribution's: the tokens it leaves out have probability 0.
            if (stopAbove < Infinity && entropy(logits) > stopAbove) break;
            const tokens = o.head.tokens;
            const d = draw ? draw(fullVocabularyLogits(o.head, logits, target.context.model.info.nVocab)) : { token: tokens ? tokens[argmax(logits)]! : argmax(logits) };
            drafts.push(d);
            token = d.token;
          }
        } finally {
          target.dropFrom(at);
        }
        return drafts;
      },
      dispose() {},
    };
    return predictor;
  };
}
