/**
 * The demo task as a benchmark of the evaluation harness: `--benchmark demo[:PART][:LEVELS]`.
 *
 * - PART: `test` (default; the model card's fixed 500 held-out problems, 100 per level), `calib` (conformal
 *   calibration) or `probe` (the probe's training set): three disjoint parts of arithmetic the model never trained on.
 * - LEVELS: `3`, `1-3` or `1,4` keeps those difficulty levels.
 *
 * The sets are fixed lists (problems are interleaved across levels, so `--limit N` still covers every level), so runs
 * with different sampling seeds evaluate the same problems.
 */
import type { Problem } from '../problem.js';
import { InvalidInputError } from '../../util/errors.js';
import { heldOutProblems, LEVELS, MAX_LEVEL, MIN_LEVEL, type DemoProblem, type ProblemSplit } from './problems.js';

type HeldOutPart = Exclude<ProblemSplit, 'train'>;
const PARTS: readonly HeldOutPart[] = ['test', 'calib', 'probe'];

/** Problems per level of each part (level 1 has only about 5,000 distinct problems, so each part holds ~120-270). */
export const PART_SIZE_PER_LEVEL: Record<HeldOutPart, number> = { test: 100, calib: 100, probe: 100 };

export interface DemoBenchmarkSpec {
  part: HeldOutPart;
  levels: number[];
}

export function parseDemoBenchmarkName(name: string): DemoBenchmarkSpec {
  const fields = name.split(':');
  if (fields[0] !== 'demo' || fields.length > 3) {
    throw new InvalidInputError(`'${name}' is not a demo benchmark: write demo, demo:test, demo:calib or demo:probe, optionally followed by :LEVELS (e.g. demo:test:1-3)`);
  }
  let part: HeldOutPart = 'test';
  let levels = LEVELS.map((l) => l.level);
  for (const f of fields.slice(1)) {
    if ((PARTS as readonly string[]).includes(f)) part = f as HeldOutPart;
    else if (/^[0-9,\-]+$/.test(f)) levels = parseLevels(f, name);
    else throw new InvalidInputError(`unknown part '${f}' in benchmark '${name}': use ${PARTS.join(', ')} or levels such as 1-3`);
  }
  return { part, levels };
}

function parseLevels(text: string, name: string): number[] {
  const out = new Set<number>();
  for (const item of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (!m) throw new InvalidInputError(`bad level list '${text}' in benchmark '${name}': write e.g. 3, 1-3 or 1,4`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < MIN_LEVEL || hi > MAX_LEVEL || lo > hi) {
      throw new InvalidInputError(`levels '${item}' in benchmark '${name}' are outside ${MIN_LEVEL}-${MAX_LEVEL}`);
    }
    for (let l = lo; l <= hi; l++) out.add(l);
  }
  return [...out].sort((a, b) => a - b);
}

/** A demo problem as the evaluation harness's problem record (gold is the integer answer). */
export function toBenchmarkProblem(p: DemoProblem, part: HeldOutPart): Problem {
  return {
    id: p.id,
    benchmark: 'demo',
    problem: p.text,
    gold: String(p.answer),
    meta: { level: p.level, part, nOps: p.ops.length },
  };
}

/**
 * Problems of a demo benchmark name. `seed` is accepted for the harness's uniform call and deliberately unused: the
 * sets are fixed.
 */
export function demoBenchmark(name: string, opts: { limit?: number; seed?: number } = {}): Problem[] {
  const spec = parseDemoBenchmarkName(name);
  const all = heldOutProblems(PART_SIZE_PER_LEVEL[spec.part], spec.part).filter((p) => spec.levels.includes(p.level));
  const limited = opts.limit !== undefined && opts.limit >= 0 ? all.slice(0, opts.limit) : all;
  return limited.map((p) => toBenchmarkProblem(p, spec.part));
}
