/**
 * Reliability of file loading: model, rule and probe files that are empty, random, truncated, corrupted, of the wrong
 * architecture or model, or missing fields each give one line naming the file and what is wrong (exit code 1), never
 * a crash, a stack trace or a silently wrong result (a rule read wrong breaks its guarantee without a word).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, statSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { GgufFile, GgufWriter } from '../src/formats/gguf/index.js';
import { readRule, readRules } from '../src/reasoning/calibration/rule-files.js';
import { OpenHeads } from '../src/reasoning/heads/exit.js';
import { loadProbe } from '../src/reasoning/lynx/probe/probe.js';
import { Rng } from '../src/util/rng.js';
import { InvalidInputError } from '../src/util/errors.js';
import { buildTinyGguf } from './helpers/engine-models.js';
import { cli } from './helpers/cli.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEMO = join(ROOT, 'models', 'lynx-demo');
const tmp = mkdtempSync(join(tmpdir(), 'lynx-rel-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const tiny = buildTinyGguf(join(tmp, 'tiny.gguf'), { arch: 'llama', type: 'f32' });

/** A copy of a GGUF with some metadata keys dropped or changed. */
function rewrite(src: string, dst: string, edit: { drop?: (key: string) => boolean; set?: Record<string, string> }): string {
  const g = GgufFile.open(src);
  const w = new GgufWriter();
  for (const [k, e] of g.metadata) {
    if (edit.drop?.(k)) continue;
    w.set(k, edit.set?.[k] ?? e.value, edit.set?.[k] !== undefined ? 'string' : e.type);
  }
  for (const t of g.tensors) w.addTensor(t.name, t.dims, g.tensor(t.name), 'f32');
  w.write(dst);
  g.close();
  return dst;
}

/** `bytes` written over `file` at `offset`. */
function patch(file: string, offset: number, bytes: number[]): void {
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.from(bytes), 0, bytes.length, offset);
  closeSync(fd);
}

function copyOf(src: string, name: string, edit?: (path: string) => void): string {
  const p = join(tmp, name);
  cpSync(src, p);
  edit?.(p);
  return p;
}

describe('model files', () => {
  const size = statSync(tiny).size;
  const rng = new Rng(7);
  const random = join(tmp, 'random.gguf');
  writeFileSync(random, Buffer.from(Array.from({ length: 4096 }, () => Math.floor(rng.next() * 256))));
  const cases: [string, string, RegExp][] = [
    ['empty', copyOf(tiny, 'empty.gguf', (p) => truncateSync(p, 0)), /empty\.gguf is too small to be a GGUF file \(0 bytes\)/],
    ['random bytes', random, /random\.gguf is not a GGUF file/],
    ['truncated in the magic', copyOf(tiny, 't3.gguf', (p) => truncateSync(p, 3)), /t3\.gguf is too small/],
    ['truncated in the header', copyOf(tiny, 't20.gguf', (p) => truncateSync(p, 20)), /t20\.gguf.*(too small|failed to read|truncated)/],
    ['truncated in the key-value pairs', copyOf(tiny, 't600.gguf', (p) => truncateSync(p, 600)), /t600\.gguf.*failed to read/],
    ['truncated in the tensor data', copyOf(tiny, 'thalf.gguf', (p) => truncateSync(p, size >> 1)), /thalf\.gguf.*not within the file bounds/],
    ['truncated by one byte', copyOf(tiny, 'tend.gguf', (p) => truncateSync(p, size - 1)), /tend\.gguf.*(not within the file bounds|corrupted|incomplete)/],
    ['tensor count corrupted', copyOf(tiny, 'ntensors.gguf', (p) => patch(p, 8, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])), /ntensors\.gguf.*number of tensors/],
    ['key-value count corrupted', copyOf(tiny, 'nkv.gguf', (p) => patch(p, 16, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])), /nkv\.gguf.*number of key value pairs/],
    ['wrong architecture', rewrite(tiny, join(tmp, 'arch.gguf'), { set: { 'general.architecture': 'nosucharch' } }), /arch\.gguf.*(unknown model architecture|nosucharch)/],
    ['missing tokenizer', rewrite(tiny, join(tmp, 'notok.gguf'), { drop: (k) => k.startsWith('tokenizer.') }), /notok\.gguf.*(tokenizer|vocab)/i],
  ];
  it.each(cases)('%s: one line naming the file, exit 1', async (_name, file, message) => {
    const r = await cli(['generate', '-m', file, '-p', 'hi', '-n', '1']);
    expect(r.err).toMatch(message);
    expect(r.code).toBe(1);
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/^lynx: /);
  });
});

describe('rule files', () => {
  const good = JSON.parse(readFileSync(join(DEMO, 'conformal', 'conformal_calib_010.json'), 'utf8'));
  const ltt = JSON.parse(readFileSync(join(DEMO, 'conformal', 'ltt_010.json'), 'utf8'));
  const write = (name: string, value: unknown) => {
    const p = join(tmp, name);
    writeFileSync(p, typeof value === 'string' ? value : JSON.stringify(value));
    return p;
  };
  const without = (o: Record<string, unknown>, k: string) => Object.fromEntries(Object.entries(o).filter(([key]) => key !== k));
  const cases: [string, string, RegExp][] = [
    ['a conformal file missing qNeg', write('no-qneg.json', without(good, 'qNeg')), /no-qneg\.json: not a valid lynx rule file: field 'qNeg'.*it is missing/],
    ['qNeg "abc"', write('qneg-abc.json', { ...good, qNeg: 'abc' }), /qneg-abc\.json: .*field 'qNeg'.*got "abc"/],
    ['qPos NaN (Python)', write('qpos-nan.json', JSON.stringify(good).replace(/"qPos":[^,]+/, '"qPos":NaN')), /qpos-nan\.json: .*field 'qPos'/],
    ['delta 1.5', write('delta.json', { ...good, delta: 1.5 }), /delta\.json: .*field 'delta'/],
    ['nNeg -1', write('nneg.json', { ...good, nNeg: -1 }), /nneg\.json: .*field 'nNeg'/],
    ['an LTT file without threshold', write('ltt-nothr.json', without(ltt, 'threshold')), /ltt-nothr\.json: not a valid ltt rule file: field 'threshold'.*it is missing/],
    ['an LTT threshold "0.5"', write('ltt-str.json', { ...ltt, threshold: '0.5' }), /ltt-str\.json: .*field 'threshold'.*got "0\.5"/],
    ['a CRC file with threshold 7', write('crc-7.json', { ...ltt, rule: 'crc', threshold: 7 }), /crc-7\.json: .*field 'threshold'/],
    ['an unknown rule', write('rule-x.json', { ...ltt, rule: 'magic' }), /rule-x\.json: unknown rule "magic"/],
    ["LYNX's file with q_neg \"abc\"", write('lynx-abc.json', { delta: 0.1, q_pos: 0.5, q_neg: 'abc', n_pos: 10, n_neg: 10 }), /lynx-abc\.json: .*field 'q_neg'.*got "abc"/],
    ["LYNX's file without n_neg values", write('lynx-nneg.json', { delta: 0.1, q_pos: 0.5, n_neg: 'x', n_pos: 3 }), /lynx-nneg\.json: .*field 'n_neg'/],
    ['an empty file', write('empty.json', ''), /empty\.json is not valid JSON/],
    ['truncated JSON', write('trunc.json', JSON.stringify(good).slice(0, 40)), /trunc\.json is not valid JSON/],
    ['an array', write('array.json', '[1,2]'), /array\.json: not a lynx\.conformal\/1 rule file/],
  ];
  it.each(cases)('%s is refused on load, naming file and field', (_name, file, message) => {
    expect(() => readRule(file)).toThrow(InvalidInputError);
    expect(() => readRule(file)).toThrow(message);
  });

  it('every shipped rule still reads', () => {
    expect(readRules(join(DEMO, 'conformal')).length).toBeGreaterThanOrEqual(21);
  });

  it("a damaged rule in an experiment folder stops 'lynx run' with exit 1 before any decoding", async () => {
    const exp = join(tmp, 'exp-rule');
    cpSync(DEMO, exp, { recursive: true });
    writeFileSync(join(exp, 'conformal', 'conformal_calib_010.json'), JSON.stringify({ ...good, qNeg: 'abc' }));
    const r = await cli(['run', '-m', join(exp, 'model.gguf'), '--probe', exp, '-p', '1+1?', '--delta', '0.1', '-n', '8', '--json']);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^lynx: .*conformal_calib_010\.json: not a valid lynx rule file: field 'qNeg'/);
  });
});

describe('probe files', () => {
  const probeCopy = (name: string, edit: (dir: string) => void): string => {
    const dir = join(tmp, name);
    cpSync(join(DEMO, 'probe'), dir, { recursive: true });
    edit(dir);
    return dir;
  };
  const weights = (dir: string) => join(dir, 'probe.safetensors');
  const header = (dir: string) => JSON.parse(readFileSync(join(dir, 'probe.json'), 'utf8'));
  /** The byte offset of the first float of tensor `name` in a safetensors file. */
  const tensorStart = (file: string, name: string) => {
    const b = readFileSync(file);
    const n = Number(b.readBigUInt64LE(0));
    const h = JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
    return 8 + n + h[name].data_offsets[0];
  };
  const nan = [0x00, 0x00, 0xc0, 0x7f];
  const cases: [string, string, RegExp][] = [
    ['NaN weights', probeCopy('nan', (d) => patch(weights(d), tensorStart(weights(d), 'layers.0.weight') + 4 * 5, nan)), /probe\.safetensors: tensor 'layers\.0\.weight' holds NaN at index 5/],
    ['an Infinity bias', probeCopy('inf', (d) => patch(weights(d), tensorStart(weights(d), 'layers.1.bias'), [0, 0, 0x80, 0x7f])), /tensor 'layers\.1\.bias' holds Infinity/],
    ['a zero scale', probeCopy('zero', (d) => patch(weights(d), tensorStart(weights(d), 'scaler.scale') + 8, [0, 0, 0, 0])), /tensor 'scaler\.scale' is 0 at index 2/],
    ['truncated weights', probeCopy('trunc', (d) => truncateSync(weights(d), statSync(weights(d)).size >> 1)), /probe\.safetensors.*(truncated|damaged|beyond|end)/i],
    ['empty weights', probeCopy('empty', (d) => truncateSync(weights(d), 0)), /probe\.safetensors/],
    ['missing weights', probeCopy('noweights', (d) => rmSync(weights(d))), /probe\.safetensors is missing/],
    ['nFeatures of another model', probeCopy('nfeat', (d) => writeFileSync(join(d, 'probe.json'), JSON.stringify({ ...header(d), nFeatures: 99 }))), /probe\.json: probe (scaler size|layers)/],
    ['a header missing its tensors', probeCopy('notensors', (d) => writeFileSync(join(d, 'probe.json'), JSON.stringify({ ...header(d), tensors: undefined }))), /probe\.json: not a valid probe header: field 'tensors'/],
    ['a layer shape that disagrees', probeCopy('shape', (d) => {
      const h = header(d);
      h.tensors.layers[0].shape = [3, 3];
      writeFileSync(join(d, 'probe.json'), JSON.stringify(h));
    }), /tensor 'layers\.0\.weight' has shape \[\d+, \d+\], .*probe\.json says \[3, 3\]/],
    ['a truncated header', probeCopy('hdr', (d) => writeFileSync(join(d, 'probe.json'), readFileSync(join(d, 'probe.json'), 'utf8').slice(0, 30))), /probe\.json/],
  ];
  it.each(cases)('%s is refused on load, naming the file', (_name, dir, message) => {
    expect(() => loadProbe(dir)).toThrow(message);
    try {
      loadProbe(dir);
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidInputError);
    }
  });

  it('the shipped probe loads', () => {
    expect(loadProbe(join(DEMO, 'probe')).probe.nFeatures).toBeGreaterThan(0);
  });

  it('a probe of another model stops lynx run with exit 1 in one line', async () => {
    const r = await cli(['run', '-m', tiny, '--probe', DEMO, '-p', '1+1?', '-n', '8', '--json']);
    expect(r.code).toBe(1);
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/^lynx: .*(layers|features)/);
  });
});

describe('heads files', () => {
  const model = join(DEMO, 'model.gguf');
  const headsCopy = (name: string, edit: (dir: string) => void): string => {
    const dir = join(tmp, `heads-${name}`);
    cpSync(join(DEMO, 'heads'), dir, { recursive: true });
    edit(dir);
    return dir;
  };
  const json = (dir: string, file: string) => JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const edit = (file: string, f: (j: any) => void) => (dir: string) => {
    const j = json(dir, file);
    f(j);
    writeFileSync(join(dir, file), JSON.stringify(j));
  };
  /** The byte offset of element `i` of tensor `name` in a safetensors file of F16 tensors. */
  const f16At = (file: string, name: string, i: number) => {
    const b = readFileSync(file);
    const n = Number(b.readBigUInt64LE(0));
    return 8 + n + JSON.parse(b.subarray(8, 8 + n).toString('utf8'))[name].data_offsets[0] + 2 * i;
  };
  const weights = (dir: string) => join(dir, 'heads.safetensors');
  const cases: [string, string, RegExp][] = [
    ['a manifest without layers', headsCopy('nolayers', edit('heads.json', (j) => delete j.layers)), /heads\.json: not a valid heads manifest: field 'layers'.*it is missing/],
    ['a vocabulary that is text', headsCopy('vocab', edit('heads.json', (j) => (j.model.nVocab = '64'))), /heads\.json: not a valid heads manifest: field 'model\.nVocab'/],
    ['a head on the last block', headsCopy('last', edit('heads.json', (j) => (j.layers = [1, 5]))), /head layer 5 is not an intermediate block/],
    ['another schema', headsCopy('schema', edit('heads.json', (j) => (j.schema = 'lynx.heads/9'))), /heads\.json: schema "lynx\.heads\/9" is not lynx\.heads\/1/],
    ['a NaN weight', headsCopy('nan', (d) => patch(weights(d), f16At(weights(d), 'head.2.weight', 7), [0x00, 0x7e])), /head\.2\.weight holds NaN at index 7/],
    ['truncated weights', headsCopy('trunc', (d) => truncateSync(weights(d), statSync(weights(d)).size >> 1)), /heads\.safetensors/],
    ['a negative threshold', headsCopy('thr', edit('calibration.json', (j) => (j.heads[0].levels[0].threshold = -1))), /calibration\.json: not a valid heads calibration: field 'heads\.0\.levels\.0\.threshold'.*got -1/],
    ['an unknown rule', headsCopy('rule', edit('calibration.json', (j) => (j.rule = 'best'))), /calibration\.json: not a valid heads calibration: field 'rule'/],
    ['a calibration of other heads', headsCopy('stale', edit('calibration.json', (j) => (j.heads[0].layer = 3))), /calibrates a head on block 3, but the heads are on blocks 1, 2, 4: calibrate again/],
  ];
  it.each(cases)('%s is refused on load, naming the file', (_name, dir, message) => {
    let error: unknown;
    try {
      OpenHeads.open(dir, model).dispose();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as Error).message).toMatch(message);
  });

  it('the shipped heads load, calibrated', () => {
    const h = OpenHeads.open(join(DEMO, 'heads'), model);
    try {
      expect(h.layers).toEqual([1, 2, 4]);
      expect(h.calibration?.heads).toHaveLength(3);
    } finally {
      h.dispose();
    }
  });
});
