/**
 * Public API of `lynx-early-exit`, in the order data flows: engine → model import → reasoning methods (LYNX and its
 * peers) → evaluation → report. Each part is documented in docs/ (engine-api.md, model-import.md, lynx.md, peers.md,
 * evaluation.md, report.md, demo-model.md).
 */

// Engine: llama.cpp through koffi (models, contexts, sequences with taps and forks, sampling).
export * from './engine/index.js';

// GGUF files and model import (Hugging Face folders, llama2.c checkpoints, tokenizers, chat templates).
export * from './formats/gguf/index.js';
export * from './import/index.js';
export { ReferenceModel, ReferenceSession, type ReferenceConfig } from './reference/index.js';

// Reasoning: rollouts, forced exits, the method interface and the baselines.
export { runRollout, type RolloutOptions, type RolloutResult, type RolloutStep, type StepDecision } from './reasoning/rollout.js';
export { EXIT_CUES, exitCueText, forcedExit, type ExitAccounting, type ExitCueName, type ForcedExitOptions, type ForcedExitResult } from './reasoning/forced-exit.js';
export { tokenCounts, addWork, type TokenCounts, type ModelWork } from './reasoning/token-counts.js';
export {
  DEFAULT_SAMPLER,
  fullRollout,
  methodEnv,
  tokenBudget,
  traceSeed,
  checkRequirements,
  type MethodEnv,
  type MethodInput,
  type MethodOutcome,
  type ReasoningMethod,
  type ReasoningSweep,
} from './reasoning/method.js';
export { problemPromptTokens, renderChatForModel } from './reasoning/prompt-tokens.js';

// LYNX: cue events, features, dataset, probe, conformal rules, simulated and online early exit.
export { CueDetector, findCueEvents, CUE_VARIANTS, type CueHit, type CueOptions } from './reasoning/lynx/cues.js';
export { defaultHiddenStateLayers, tapLayersFor, type LastLayerTap } from './reasoning/lynx/features.js';
export { buildDataset, buildDatasetToDir, mergeShards, summarizeDataset, type BuildOptions, type BuildToDirOptions } from './reasoning/lynx/dataset/builder.js';
export { DatasetWriter, readDataset, mergeDatasets, type EventMeta, type Dataset } from './reasoning/lynx/dataset/store.js';
export { Probe, trainProbe, saveProbe, loadProbe, DEFAULT_PROBE_CONFIG, type ProbeConfig, type ProbeMetrics } from './reasoning/lynx/probe/probe.js';
export {
  calibrateLynx,
  calibrateLtt,
  calibrateCrc,
  conformalSweep,
  ruleExits,
  DEFAULT_DELTAS,
  type ExitRule,
  type LynxRule,
  type TrajectoryRule,
} from './reasoning/calibration/conformal.js';
export { parseRule, parseLynxConformal, readRule, readRules, RULE_NAMES, type RuleName } from './reasoning/calibration/rule-files.js';
export { oracleFrontier, thresholdFrontier, compareWithOracle, simulateOracle, type FrontierPoint, type OracleComparison } from './reasoning/lynx/oracle.js';
export { readLynxMetrics, readLynxPredictions, writeLynxFiles, type LynxPredictionRow } from './reasoning/lynx/lynx-files.js';
export { lynxMetrics, type SimRollout, type LynxMetrics } from './reasoning/lynx/simulate.js';
export { simulate, writeSimulation } from './eval/simulated-runs.js';
export { solveWithLynx, lynxMethod, type LynxPolicy, type ScoredCueEvent } from './reasoning/lynx/online.js';
export { loadLynxPolicy } from './reasoning/lynx/policy.js';
export { trainProbeStep } from './pipeline/train-probe.js';
export { calibrateStep } from './pipeline/calibrate.js';
export { simulateStep } from './pipeline/simulate.js';

// Pipeline steps: what the CLI commands run, as plain functions.
export { buildDatasetStep, type BuildDatasetStepOptions } from './pipeline/build-dataset.js';
export { evaluateStep, type EvaluateStepOptions } from './pipeline/evaluate.js';
export { methodsFor, contextNeeds, METHOD_NAMES, type MethodSpec } from './pipeline/methods.js';
export { deerRolloutsStep } from './pipeline/deer-rollouts.js';
export { answerWithLynx } from './pipeline/answer.js';
export { openModel, resolveModelPath } from './pipeline/model.js';

// The generator seam the methods are written against.
export {
  requireCapabilities,
  type Capabilities,
  type Generator,
  type GeneratorSequence,
  type Requirement,
  type Vocabulary,
} from './backends/generator.js';
export { LocalGenerator } from './backends/local.js';
export { CountingGenerator } from './backends/counting.js';

// Peer methods on the same harness.
export { deer, deerSweep, type DeerOptions } from './reasoning/peers/deer.js';
export { deepConf, deepConfSweep, type DeepConfOptions } from './reasoning/peers/deepconf.js';
export { dynasorCot, dynasorSweep, type DynasorOptions } from './reasoning/peers/dynasor.js';
export { readDeerRollouts, writeDeerRollouts, applyAtDeerEvents } from './reasoning/lynx/deer-rollouts.js';
// Big/small composition (SplitReason, its baselines, any method on top): docs/composition.md
export { composeMethod } from './reasoning/compose/compose-method.js';
export { ComposedGenerator, sameVocabulary, type ComposedGeneratorOptions } from './reasoning/compose/composed-generator.js';
export { ComposedSequence } from './reasoning/compose/composed-sequence.js';
export type { Author, CompositionPolicy, HandBack, Speculate, Subselect, TraceState, Turn } from './reasoning/compose/policy.js';
export { BIG_OPEN, BIG_CLOSE, OFFLOAD_HINT, SPLIT_DEFAULTS, tagVerdict } from './reasoning/compose/protocol.js';
export { splitPolicy, inBigSegment, type SplitOptions } from './reasoning/compose/split.js';
export { randomSwitchPolicy, bigChance, ratioForShare, chunkIsBig, type RandomSwitchOptions } from './reasoning/compose/random-switch.js';
export { logprobSubselectPolicy, SUBSELECT_DEFAULTS } from './reasoning/compose/logprob-subselect.js';
export { smallOnlyPolicy, bigOnlyPolicy } from './reasoning/compose/single-model.js';
export { specReasonPolicy, SPECREASON_JUDGE, SPECREASON_DEFAULTS } from './reasoning/compose/specreason.js';
export { summarizeCompose, type ComposeStats, type ComposeSummary } from './reasoning/compose/stats.js';

// Evaluation and reports.
export { loadBenchmark, benchmarkLabel, type BenchmarkSelection } from './tasks/registry.js';
export type { Problem, Choice } from './tasks/problem.js';
export { extractAnswer } from './tasks/answer-extract.js';
export { answersEquivalent, answersEquivalentSync, type Grading } from './tasks/answer-equiv.js';
export { runEvaluation, type RunOptions, type RunResult } from './eval/runner.js';
export { evaluateMethod, type EvaluateOptions } from './eval/evaluate-method.js';
export type { PredictionRecord, RunMetrics } from './eval/records.js';
export { writeReport, scanExperiment } from './report/index.js';

// The demo reasoner.
export { demoBenchmark } from './tasks/demo/benchmark.js';
export { shippedDemo } from './demo/shipped.js';
export { compareWithBaseline, type DemoProblemResult, type DemoSummary } from './demo/compare.js';
export { DEMO_RECIPES, trainDemoModel } from './demo/train.js';
// Early-exit heads and self-speculative decoding (BranchyLLM's system): docs/heads.md
export { EarlyExitHeads, modelFingerprint, evenlySpacedLayers, type HeadsManifest, type HeadMetrics, type ModelFingerprint } from './reasoning/heads/heads.js';
export { calibrateHeads, loadCalibration, saveCalibration, thresholdsAt, type HeadsCalibration, type HeadCalibration, type HeadLevel } from './reasoning/heads/calibrate.js';
export { OpenHeads, selfSpeculativeMode, layerExitMode, chooseDraftLayer, draftStepCost, type OpenHeadsOptions, type SelfSpeculativeOptions, type LayerExitModeOptions } from './reasoning/heads/exit.js';
export { writeDraftModel } from './reasoning/heads/draft-gguf.js';
export { draftVocabulary, countArgmax, argmaxCoverage } from './reasoning/heads/draft-vocab.js';
export { trainHeadsStep, calibrateHeadsStep, draftModelStep, type TrainHeadsStepOptions, type CalibrateHeadsStepOptions, type HeadTextSource } from './pipeline/heads.js';
export { openDecoding, parseDraftSource, defaultHeadsDir, partialDepthHolds, type DecodingSpec, type DraftSource, type OpenDecoding } from './pipeline/decoding.js';
export { compareDecodingStep, formatComparison, type CompareDecodingOptions, type Comparison, type ModeResult } from './pipeline/compare-decoding.js';
export { generateStep, type GenerateStepOptions, type GenerateResult, type DecodingReport } from './pipeline/generate.js';

export { LynxError, InvalidInputError, UnsupportedError } from './util/errors.js';
