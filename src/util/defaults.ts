/**
 * Options over their defaults, where an option given as `undefined` keeps its default: `{ ...DEFAULTS, ...opts }`
 * would put undefined in (a CLI option left out arrives as undefined), and the check after it would then refuse a
 * value the user never gave.
 */
export function withDefaults<T extends object>(defaults: Readonly<T>, opts: Partial<T> | undefined): T {
  const out = { ...defaults } as T;
  for (const [k, v] of Object.entries(opts ?? {})) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
