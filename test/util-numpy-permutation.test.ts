/**
 * NumPy's `default_rng(seed).permutation(n)`, reproduced bit for bit (LYNX picks its problem subsets with it). The
 * expected values were printed by NumPy 2.4 (`np.random.default_rng(s).permutation(n)`).
 */
import { describe, expect, it } from 'vitest';
import { NumpyPcg64, numpyPermutation } from '../src/util/rng.js';

describe("NumPy's default_rng permutation", () => {
  it('gives the permutations NumPy gives', () => {
    expect(numpyPermutation(10, 123)).toEqual([7, 4, 0, 2, 1, 5, 6, 8, 3, 9]);
    expect(numpyPermutation(10, 42)).toEqual([5, 6, 0, 7, 3, 2, 4, 9, 1, 8]);
    const p500 = numpyPermutation(500, 0);
    expect(p500.slice(0, 8)).toEqual([221, 434, 109, 334, 375, 71, 378, 205]);
    expect(p500.slice(-3)).toEqual([289, 463, 95]);
    const gsm = numpyPermutation(1319, 42);
    expect(gsm.slice(0, 4)).toEqual([30, 754, 429, 1010]);
    expect(gsm.slice(-3)).toEqual([141, 706, 973]);
    // A seed above 2^32 spans two 32-bit entropy words.
    expect(numpyPermutation(30, 2 ** 40 + 7).slice(0, 4)).toEqual([5, 22, 16, 6]);
    expect(numpyPermutation(1, 5)).toEqual([0]);
    expect([...numpyPermutation(1000, 9)].sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });

  it("draws PCG64's raw 64-bit outputs as NumPy does (default_rng(0).bit_generator.random_raw())", () => {
    const g = new NumpyPcg64(0);
    expect(g.next64()).toBe(11749869230777074271n);
  });
});
