/** The decoding options every command that generates declares (`--draft`, `--layer-exit`, ...), and their parse. */
import type { Command } from 'commander';
import type { DecodingSpec } from '../pipeline/decoding.js';
import { InvalidInputError, UsageError } from '../util/errors.js';
import { floatOption, intOption } from './options.js';

export interface DecodingArgs {
  draft?: string;
  layerExit?: string;
  accuracyLevel?: number;
  draftMax?: number;
  draftLayer?: string;
  draftRule?: string;
  draftVocab?: number;
  threads?: number;
}

export function decodingOptions(command: Command): Command {
  return command
    .option('--draft <src>', 'speculative decoding (lossless): heads[:DIR] (self-drafting with early-exit heads, default DIR heads/ beside the model) or model:PATH (a draft GGUF)')
    .option('--layer-exit <src>', 'layer exit with early-exit heads, heads[:DIR]: LOSSY, a confident head emits its token')
    .option('--accuracy-level <a>', 'calibrated level: where self-drafting stops (entropy above its threshold), where layer exit exits (default 0.9)', floatOption('--accuracy-level', 0, 1))
    .option('--draft-max <n>', 'drafts per verification at most', intOption('--draft-max', 1), 5)
    .option('--draft-layer <k>', 'the head that drafts (a block), or auto: the best analytic speedup', 'auto')
    .option('--draft-vocab <n>', 'self-drafting from the N tokens the model emits most (FR-Spec): a cheaper head product on a large vocabulary, still lossless', intOption('--draft-vocab', 1))
    .option('--draft-rule <r>', 'sampling: rejection (standard speculative sampling) or match (the tokens of plain sampling for a seed)', 'rejection')
    .option('--threads <n>', 'CPU threads', intOption('--threads', 1));
}

export function decodingSpecOf(a: DecodingArgs): DecodingSpec | undefined {
  if (!a.draft && !a.layerExit) {
    if (a.draftVocab !== undefined) throw new UsageError('--draft-vocab needs --draft heads[:DIR] (self-speculative decoding)');
    return undefined;
  }
  if (a.draftRule !== undefined && a.draftRule !== 'rejection' && a.draftRule !== 'match') throw new InvalidInputError(`--draft-rule must be rejection or match, got '${a.draftRule}'`);
  let draftLayer: number | 'auto' = 'auto';
  if (a.draftLayer !== undefined && a.draftLayer !== 'auto') {
    draftLayer = Number(a.draftLayer);
    if (!Number.isInteger(draftLayer) || draftLayer < 0) throw new InvalidInputError(`--draft-layer must be a block index or auto, got '${a.draftLayer}'`);
  }
  return {
    draft: a.draft,
    layerExit: a.layerExit,
    level: a.accuracyLevel ?? (a.layerExit ? 0.9 : undefined),
    draftMax: a.draftMax,
    draftLayer,
    rule: a.draftRule as 'rejection' | 'match' | undefined,
    draftVocab: a.draftVocab,
    threads: a.threads,
  };
}
