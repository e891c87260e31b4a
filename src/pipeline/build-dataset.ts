/**
 * `lynx build-dataset`: rollouts of a benchmark's problems with every cue event labelled by a forced exit, written as an
 * event dataset (resumable, shardable; lynx/dataset/builder.ts does the work).
 */
import { basename } from 'node:path';
import type { LlamaModel } from '../engine/index.js';
import { openAIGenerators } from '../backends/openai/index.js';
import {
  buildDatasetToDir,
  summarizeDataset,
  type BuildProgress,
  type BuildToDirOptions,
  type BuildToDirResult,
  type DatasetSummary,
} from '../reasoning/lynx/dataset/builder.js';
import { defaultHiddenStateLayers } from '../reasoning/lynx/features.js';
import { DEFAULT_SPLIT_SEED, loadBenchmark, type BenchmarkSelection } from '../tasks/registry.js';
import { InvalidInputError } from '../util/errors.js';
import { connectBackend, remoteProgress, type BackendOptions, type RemoteProgress } from './backend.js';
import { openModel } from './model.js';
import { checkPromptLengths, type PromptLimitOptions } from './prompt-limits.js';

export interface BuildDatasetStepOptions
  extends Omit<BuildToDirOptions, 'model' | 'problems' | 'info' | 'hiddenStateLayers' | 'generators' | 'onProgress'>,
    BackendOptions,
    Pick<PromptLimitOptions, 'maxPromptTokens' | 'skipLongPrompts' | 'onSkip'> {
  /** A loaded model, or a GGUF file / Hugging Face folder to load (and dispose at the end). */
  model: LlamaModel | string;
  benchmark: string;
  selection?: BenchmarkSelection;
  /** Hugging Face hidden-state indices read at each event; default LYNX's for the model's depth. */
  layers?: readonly number[];
  /** Rollouts in flight. Default 4 locally, `maxInflight` with a remote backend. */
  concurrency?: number;
  /** After every finished rollout; `remote` while generating on a server. */
  onProgress?: (p: BuildProgress & { remote?: RemoteProgress }) => void;
}

/** The hidden-state indices of a build, checked against the model's depth. */
export function checkLayers(layers: readonly number[] | undefined, nLayer: number): number[] {
  if (!layers) return defaultHiddenStateLayers(nLayer);
  for (const n of layers) {
    if (!Number.isInteger(n) || n < 1 || n > nLayer) {
      throw new InvalidInputError(`--layers: '${n}' is not a hidden-state index of this model (1..${nLayer}; 0, the embeddings, is not tapped)`);
    }
  }
  if (new Set(layers).size !== layers.length) throw new InvalidInputError(`--layers: ${layers.join(',')} names a layer twice`);
  return [...layers];
}

export async function buildDatasetStep(o: BuildDatasetStepOptions): Promise<{ result: BuildToDirResult; summary: DatasetSummary }> {
  const problems = loadBenchmark(o.benchmark, o.selection);
  if (problems.length === 0) throw new InvalidInputError(`no problems selected from ${o.benchmark}`);
  const model = typeof o.model === 'string' ? await openModel(o.model) : o.model;
  try {
    const { benchmark, selection, layers, backend, baseUrl, apiKey, remoteModel, maxInflight, requestTimeout, retries, vocabCheck, onRetry, onProgress, maxPromptTokens, skipLongPrompts, onSkip, ...build } = o;
    // Before any context is sized from the longest prompt.
    const fitting = checkPromptLengths(model, problems, { maxPromptTokens, skipLongPrompts, onSkip, promptStyle: o.promptStyle });
    const server = await connectBackend({ backend, baseUrl, apiKey, remoteModel, maxInflight, requestTimeout, retries, vocabCheck, onRetry }, model);
    const result = await buildDatasetToDir({
      ...build,
      model,
      problems: fitting,
      generators: server ? openAIGenerators(server, model, { threads: o.threads }) : undefined,
      concurrency: o.concurrency ?? server?.limit.max ?? 4,
      onProgress: onProgress && ((p) => onProgress(server ? { ...p, remote: remoteProgress(server) } : p)),
      info: {
        benchmark: benchmark.endsWith('.jsonl') ? basename(benchmark) : benchmark,
        selection: {
          split: selection?.split ?? null,
          limit: selection?.limit ?? null,
          limitPerSubset: selection?.limitPerSubset ?? null,
          subsetOffset: selection?.subsetOffset ?? null,
          subsets: selection?.subsets ?? null,
          splitOffset: selection?.splitOffset ?? null,
          splitSeed: selection?.splitOffset !== undefined ? (selection.splitSeed ?? DEFAULT_SPLIT_SEED) : null,
        },
      },
      hiddenStateLayers: checkLayers(layers, model.info.nLayer),
    });
    return { result, summary: summarizeDataset(result.dir) };
  } finally {
    if (typeof o.model === 'string') model.dispose();
  }
}
