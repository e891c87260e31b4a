/** JSON has no Infinity or NaN: write them as null (readers turn a null bound back into +∞ where that is its meaning). */
export function nullForNonFinite<T>(v: T): T {
  return JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? null : x))) as T;
}
