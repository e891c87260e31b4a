/** Which layers LYNX reads and how: Hugging Face hidden-state indices, the last one after the final norm. */
import { describe, expect, it } from 'vitest';
import { checkLastLayerTap, defaultHiddenStateLayers, tapLayersFor } from '../src/reasoning/lynx/features.js';
import { policyTapLayers } from '../src/reasoning/lynx/online.js';
import { InvalidInputError } from '../src/util/errors.js';

describe('LYNX features', () => {
  it("reads hidden_states[L] after the final norm (the 'final' tap) and earlier indices as block outputs", () => {
    expect(tapLayersFor([9, 16, 28], 28)).toEqual([8, 15, 'final']);
    // What probes built before the distinction read: the last block's raw output.
    expect(tapLayersFor([9, 16, 28], 28, 'residual')).toEqual([8, 15, 27]);
    expect(policyTapLayers({ hiddenStateLayers: [2, 6] }, 6)).toEqual([1, 'final']);
    expect(policyTapLayers({ hiddenStateLayers: [2, 6], lastLayer: 'residual' }, 6)).toEqual([1, 5]);
    expect(() => tapLayersFor([0], 6)).toThrow(InvalidInputError);
    expect(() => tapLayersFor([7], 6)).toThrow(InvalidInputError);
  });

  it("defaults to LYNX's layers for the depths its scripts name", () => {
    expect(defaultHiddenStateLayers(28)).toEqual([9, 16, 28]);
    expect(defaultHiddenStateLayers(32)).toEqual([8, 16, 24, 32]);
    expect(defaultHiddenStateLayers(36)).toEqual([12, 18, 24, 36]);
    expect(defaultHiddenStateLayers(64)).toEqual([16, 32, 48, 64]);
    expect(defaultHiddenStateLayers(6)).toEqual([2, 3, 5, 6]);
  });

  it('a dataset or probe that does not say how it read the last layer read it before the norm', () => {
    expect(checkLastLayerTap(undefined, 'x')).toBe('residual');
    expect(checkLastLayerTap('final', 'x')).toBe('final');
    expect(() => checkLastLayerTap('norm', 'probe.json')).toThrow(/probe.json: lastLayer must be/);
  });
});
