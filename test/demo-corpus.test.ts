import { describe, expect, it } from 'vitest';
import { buildCorpus, buildDemoTokenizer, labelsEverywhere, renderDemoPrompt, tokenizeExample } from '../src/demo/corpus.js';
import { heldOutProblems } from '../src/tasks/demo/problems.js';
import { SPECIAL } from '../src/demo/tokenizer.js';
import { generateTraces } from '../src/demo/traces.js';
import { InvalidInputError } from '../src/util/errors.js';

const tok = buildDemoTokenizer();

describe('demo corpus', () => {
  const corpus = buildCorpus(tok, { seed: 5, nSequences: 64, nCtx: 512 });

  it('is reproducible from its seed', () => {
    const again = buildCorpus(tok, { seed: 5, nSequences: 64, nCtx: 512 });
    expect(Buffer.from(again.tokens.buffer)).toEqual(Buffer.from(corpus.tokens.buffer));
    expect(Buffer.from(again.labels.buffer)).toEqual(Buffer.from(corpus.labels.buffer));
    const other = buildCorpus(tok, { seed: 6, nSequences: 64, nCtx: 512 });
    expect(Buffer.from(other.tokens.buffer)).not.toEqual(Buffer.from(corpus.tokens.buffer));
  });

  it('packs whole examples (BOS ... EOS) into fixed windows, padded, densely', () => {
    expect(corpus.tokens).toHaveLength(64 * 512);
    expect(corpus.stats.fill).toBeGreaterThan(0.7);
    expect(corpus.stats.droppedTooLong / corpus.stats.traces).toBeLessThan(0.02);
    const covered = new Uint8Array(corpus.tokens.length);
    for (const ex of corpus.examples) {
      const base = ex.window * 512 + ex.offset;
      expect(ex.offset + ex.length).toBeLessThanOrEqual(512);
      expect(corpus.tokens[base]).toBe(tok.bos);
      expect(corpus.tokens[base + ex.length - 1]).toBe(tok.eos);
      for (let i = base; i < base + ex.length; i++) {
        expect(covered[i]).toBe(0);
        covered[i] = 1;
      }
      const text = tok.decode([...corpus.tokens.subarray(base, base + ex.promptTokens)]);
      expect(text.startsWith(SPECIAL.bos + SPECIAL.user)).toBe(true);
      expect(text.endsWith(`${SPECIAL.assistant}<think>\n`)).toBe(true);
    }
    for (let i = 0; i < covered.length; i++) if (!covered[i]) expect(corpus.tokens[i]).toBe(tok.pad);
  });

  it('takes loss on the completion only, with next-token targets', () => {
    const expected = new Int32Array(corpus.labels.length).fill(-1);
    for (const ex of corpus.examples) {
      const base = ex.window * 512 + ex.offset;
      for (let i = ex.promptTokens - 1; i < ex.length - 1; i++) expected[base + i] = corpus.tokens[base + i + 1]!;
    }
    expect([...corpus.labels]).toEqual([...expected]);
    expect(corpus.stats.labelled).toBe(expected.filter((x) => x >= 0).length);
    // The first target of every example is the first thinking token; the last is EOS.
    const ex = corpus.examples[0]!;
    expect(corpus.labels[ex.promptTokens - 1]).toBe(corpus.tokens[ex.promptTokens]);
    expect(corpus.labels[ex.length - 2]).toBe(tok.eos);
  });

  it('can take loss on everything, and gives every position a target for trainers without an ignore index', () => {
    const all = buildCorpus(tok, { seed: 5, nSequences: 8, nCtx: 512, loss: 'all' });
    for (const ex of all.examples) {
      const base = ex.window * 512 + ex.offset;
      for (let i = 0; i < ex.length - 1; i++) expect(all.labels[base + i]).toBe(all.tokens[base + i + 1]);
      expect(all.labels[base + ex.length - 1]).toBe(-1);
    }
    const dense = labelsEverywhere(all, tok.pad);
    expect(dense.every((x) => x >= 0 && x < tok.vocabSize)).toBe(true);
  });

  it('never contains a held-out problem', () => {
    const big = buildCorpus(tok, { seed: 9, nSequences: 400, nCtx: 512 });
    const ids = new Set(big.examples.map((e) => e.problemId));
    expect(ids.size).toBeGreaterThan(300);
    for (const part of ['test', 'calib', 'probe'] as const) {
      for (const p of heldOutProblems(100, part)) expect(ids.has(p.id)).toBe(false);
    }
  });

  it('tokenizes the prompt on its own exactly as inside the whole example', () => {
    for (const t of generateTraces(200, { seed: 3 })) {
      const ex = tokenizeExample(tok, t);
      expect(ex.ids.slice(0, ex.promptTokens)).toEqual(tok.encode(renderDemoPrompt(t.prompt)));
      expect(tok.decode(ex.ids.slice(ex.promptTokens, -1))).toBe(t.completion);
    }
  });

  it('rejects bad options with a clear message', () => {
    expect(() => buildCorpus(tok, { seed: 1, nSequences: 0 })).toThrow(InvalidInputError);
    expect(() => buildCorpus(tok, { seed: 1, nSequences: 1, nCtx: 16 })).toThrow(/too small/);
  });
});
