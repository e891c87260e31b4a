/**
 * `--sampler`: a sampler from the decoding literature on top of `-t` / `--top-p` (which it replaces where it does its
 * own truncation). Specs: `mirostat2:tau=3,eta=0.1`, `mirostat1:tau=3,eta=0.1,m=100`, `top-h:alpha=0.4`,
 * `ead:max=1.2,min=0.1,decay=100,warmup=10`, or `default`.
 */
import { InvalidArgumentError } from 'commander';
import type { SamplerOptions } from '../engine/index.js';

const NAMES = 'default, mirostat1:tau=T,eta=E[,m=M], mirostat2:tau=T,eta=E, top-h:alpha=A, ead:max=T,min=T,decay=D[,warmup=C]';

export type SamplerSpec = Pick<SamplerOptions, 'mirostat' | 'topH' | 'annealing'>;

/** Commander parser of `--sampler`. */
export function samplerOption(value: string): SamplerSpec {
  const [name, rest = ''] = value.split(':', 2) as [string, string?];
  const kv: Record<string, number> = {};
  for (const part of rest.split(',').filter(Boolean)) {
    const [k, v] = part.split('=');
    const n = Number(v);
    if (!k || v === undefined || !Number.isFinite(n)) throw new InvalidArgumentError(`--sampler ${value}: '${part}' is not key=number (${NAMES})`);
    kv[k.trim()] = n;
  }
  const need = (...keys: string[]) => {
    const missing = keys.filter((k) => kv[k] === undefined);
    if (missing.length > 0) throw new InvalidArgumentError(`--sampler ${name} needs ${missing.join(', ')} (${NAMES})`);
  };
  switch (name) {
    case 'default':
      return {};
    case 'mirostat1':
    case 'mirostat2':
      need('tau', 'eta');
      return { mirostat: { version: name === 'mirostat1' ? 1 : 2, tau: kv.tau!, eta: kv.eta!, ...(kv.m !== undefined ? { m: kv.m } : {}) } };
    case 'top-h':
      need('alpha');
      return { topH: kv.alpha };
    case 'ead':
      need('max', 'min', 'decay');
      return { annealing: { tauMax: kv.max!, tauMin: kv.min!, decay: kv.decay!, ...(kv.warmup !== undefined ? { warmup: kv.warmup } : {}) } };
    default:
      throw new InvalidArgumentError(`--sampler: unknown sampler '${name}' (${NAMES})`);
  }
}

/** The sampler of a command: temperature and top-p, with `--sampler` on top (Mirostat and Top-H replace top-p). */
export function samplerOf(args: { temperature: number; topP?: number; sampler?: SamplerSpec }): SamplerOptions {
  const spec = args.sampler ?? {};
  const ownTruncation = spec.mirostat !== undefined || spec.topH !== undefined;
  return { temperature: args.temperature, ...(ownTruncation || args.topP === undefined ? {} : { topP: args.topP }), ...spec };
}

export const SAMPLER_HELP = `sampler from the literature: ${NAMES}`;
