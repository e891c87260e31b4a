/** Decoding modes beyond one full decode per token: speculative decoding (self-draft or draft model) and layer exit. */
export { emptyStats, type DecodingMode, type DecodingRun, type DecodingStats, type PendingToken } from './mode.js';
export { fullVocabularyLogits, type DraftToken, type LayerHead, type PredictionRequest, type PredictorFactory, type TokenPredictor } from './predictor.js';
export { speculativeDecoding, DEFAULT_DRAFT_MAX, type SpeculativeOptions } from './speculative.js';
export { selfDraftPredictor, type SelfDraftOptions } from './self-draft.js';
export { draftModelPredictor, checkSameVocabulary, type DraftModelOptions } from './draft-model.js';
export { layerExitDecoding, type LayerExitOptions } from './layer-exit.js';
export { acceptDrafts, residualDraw, type AcceptRule, type AcceptOptions, type Verdict } from './acceptance.js';
export { entropy, softmax, samplerProbs, drawFrom } from './distribution.js';
export { expectedTokensPerVerification, speculativeSpeedup, bestDraftLength, type SpeedupInputs } from './analysis.js';
