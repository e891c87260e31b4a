/**
 * The HTML report in headless Chromium (Debian's `chromium`, driven by playwright-core; no browser download).
 * Screenshots go to test-output/ (report.png, report-trace.png) for a human to look at.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeReport, type ReportData } from '../src/report/index.js';
import { buildSyntheticExperiment, INJECTION, type SyntheticExperiment } from './fixtures/report/synthetic-experiment.js';

const CHROMIUM = process.env.LYNX_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(REPO, 'test-output');

let browser: Browser;
let tmp: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's package (apt-get install -y chromium) or set LYNX_CHROMIUM to its path. The report tests need it and do not skip.`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  tmp = mkdtempSync(join(tmpdir(), 'lynx-report-'));
  mkdirSync(OUT, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

interface Loaded {
  page: Page;
  errors: string[];
  external: string[];
}

/** Open a report from disk with every non-file request blocked and recorded; collect console errors and page errors. */
async function open(path: string): Promise<Loaded> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  const errors: string[] = [];
  const external: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('file:')) return route.continue();
    external.push(url);
    return route.abort();
  });
  await page.goto(pathToFileURL(path).href, { waitUntil: 'load' });
  await page.waitForSelector('html[data-lynx-ready="true"]', { timeout: 20_000 });
  return { page, errors, external };
}

const count = (page: Page, selector: string) => page.locator(selector).count();

/** Non-dominated (accuracy up, tokens down) points, by brute force. */
function frontierSize(pts: { accuracy: number; avgTokens: number }[]): number {
  return pts.filter((p) => !pts.some((q) => q !== p && q.accuracy >= p.accuracy && q.avgTokens <= p.avgTokens && (q.accuracy > p.accuracy || q.avgTokens < p.avgTokens))).length;
}

describe('report page', () => {
  let exp: SyntheticExperiment;
  let data: ReportData;
  let loaded: Loaded;
  const benchmarks = ['csqa', 'gsm8k', 'math500'];

  beforeAll(async () => {
    const root = join(tmp, 'exp');
    exp = buildSyntheticExperiment(root);
    const res = writeReport(root);
    expect(res.path).toBe(join(root, 'report.html'));
    data = res.data;
    loaded = await open(res.path);
  });

  afterAll(async () => {
    await loaded?.page.close();
  });

  it('loads offline with no console errors, page errors or network requests', async () => {
    expect(loaded.errors).toEqual([]);
    expect(loaded.external).toEqual([]);
    expect(await loaded.page.title()).toContain('Lynx evaluation report');
    expect(await loaded.page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  });

  it('draws one point per run and the Pareto frontier for every benchmark', async () => {
    const { page } = loaded;
    expect(await count(page, 'figure[data-kind="pareto"]')).toBe(benchmarks.length);
    for (const b of benchmarks) {
      const runs = exp.runs.filter((r) => r.benchmark === b);
      const fig = `figure[data-kind="pareto"][data-benchmark="${b}"]`;
      expect(await count(page, `${fig} g.mark-runs circle`)).toBe(runs.length);
      const front = frontierSize(runs);
      expect(front).toBeGreaterThan(0);
      expect(await count(page, `${fig} g.mark-pareto-points circle`)).toBe(front);
      expect(await count(page, `${fig} g.mark-pareto-labels text`)).toBe(front);
      expect(await count(page, `${fig} g.mark-pareto-frontier path`)).toBe(1);
      expect(await count(page, `${fig} g.mark-accuracy-ci line`)).toBe(runs.length);
    }
    // Every benchmark but csqa has a full run, so no separate "full rollout" star is drawn; csqa has no baseline at all.
    expect(await count(page, 'g.mark-full-rollout path')).toBe(0);
  });

  it('switches the accuracy plots between output and decoded tokens, each with its own frontier', async () => {
    const { page } = loaded;
    expect(data.tokenKinds).toEqual(['output', 'decoded']);
    await page.selectOption('#pareto-token-kind', 'decoded');
    expect(await count(page, 'figure[data-kind="pareto"][data-tokens="decoded"]')).toBe(benchmarks.length);
    for (const b of benchmarks) {
      const runs = exp.runs.filter((r) => r.benchmark === b && r.avgDecoded !== null);
      const fig = `figure[data-kind="pareto"][data-benchmark="${b}"]`;
      expect(await count(page, `${fig} g.mark-runs circle`)).toBe(runs.length);
      if (runs.length > 0) expect(await count(page, `${fig} g.mark-pareto-points circle`)).toBe(frontierSize(runs.map((r) => ({ accuracy: r.accuracy, avgTokens: r.avgDecoded! }))));
    }
    // csqa's runs predate decoded counts: no point there; DEER's trials move it right on the decoded axis.
    expect(exp.runs.some((r) => r.method === 'deer' && r.avgDecoded! > r.avgTokens)).toBe(true);
    await page.selectOption('#pareto-token-kind', 'output');
    expect(await count(page, 'figure[data-kind="pareto"][data-tokens="output"]')).toBe(benchmarks.length);
  });

  it('plots the premature-exit rate against delta with the y = delta line', async () => {
    const { page } = loaded;
    const evalWithDelta = exp.runs.filter((r) => r.delta !== null).length;
    const fig = 'figure[data-kind="premature"]';
    expect(await count(page, `${fig} g.mark-premature-points circle`)).toBe(exp.conformal.length + evalWithDelta);
    expect(await count(page, `${fig} g.mark-premature-ci line`)).toBe(
      exp.conformal.filter((c) => c.heldOut.prematureExitRateCi95).length + evalWithDelta,
    );
    // y = delta: one path from the origin up and to the right, at 45° in data units.
    expect(await count(page, `${fig} g.mark-y-equals-delta path`)).toBe(1);
    const d = await page.locator(`${fig} g.mark-y-equals-delta path`).getAttribute('d');
    const nums = (d ?? '').match(/-?\d+(\.\d+)?/g)!.map(Number);
    expect(nums.length).toBe(4);
    const [x0, y0, x1, y1] = nums as [number, number, number, number];
    expect(x1).toBeGreaterThan(x0);
    expect(y1).toBeLessThan(y0);
    expect(await page.locator(`${fig} g.mark-y-equals-delta-label text`).textContent()).toBe('y = δ');
    // one line per series: two conformal rules and one eval series per benchmark with lynx runs
    expect(await count(page, `${fig} g.mark-premature-lines path`)).toBe(2 + 3);
    expect(await count(page, 'figure[data-kind="exit-rate"] g.mark-exit-rate-points circle')).toBe(exp.conformal.length + evalWithDelta);
    // the table has one row per point, and the null threshold says so
    expect(await count(page, '#delta tbody tr')).toBe(exp.conformal.length + evalWithDelta);
    expect(await page.locator('#delta tbody').textContent()).toContain('none certified');
  });

  it('draws one savings bar per non-reference run that has a reference, and says when there is none', async () => {
    const { page } = loaded;
    for (const b of benchmarks) {
      const expected = exp.runs.filter((r) => r.benchmark === b && r.method !== 'full' && r.hasSavings).length;
      const fig = `figure[data-kind="savings"][data-benchmark="${b}"]`;
      expect(await count(page, `${fig} g.mark-savings-bars rect`)).toBe(expected);
      if (expected === 0) expect(await page.locator(`${fig} .empty`).textContent()).toContain('full-rollout reference');
    }
    // The savings drawn are those of the data: lynx delta=0.05 on gsm8k.
    const run = data.runs.find((r) => r.key === 'gsm8k/lynx/delta=0.05')!;
    const src = exp.runs.find((r) => r.benchmark === 'gsm8k' && r.method === 'lynx' && r.setting === 'delta=0.05')!;
    const full = exp.runs.find((r) => r.benchmark === 'gsm8k' && r.method === 'full')!;
    expect(run.metrics.savingsRate).toBeCloseTo(1 - src.avgTokens / full.avgTokens, 9);
  });

  it('lists every run in the summary table, and sorts it', async () => {
    const { page } = loaded;
    expect(await count(page, '#summary tbody tr')).toBe(exp.runs.length);
    const noMetrics = data.runs.find((r) => r.key === 'math500/lynx/delta=0.2')!;
    expect(noMetrics.metricsSource).toBe('predictions');
    await page.locator('#summary th', { hasText: 'Avg tokens' }).click();
    const first = await page.locator('#summary tbody tr').first().getAttribute('data-run');
    const min = [...data.runs].sort((a, b) => a.metrics.avgTokens - b.metrics.avgTokens)[0]!;
    expect(first).toBe(min.key);
    // by setting: numbers inside setting names compare as numbers (delta=0.05 < delta=0.1 < delta=0.2)
    await page.locator('#summary th', { hasText: 'Setting' }).click();
    const keys = (await page.locator('#summary tbody tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-run')!))).filter((k) => k.startsWith('gsm8k/lynx/'));
    expect(keys).toEqual(['gsm8k/lynx/delta=0.05', 'gsm8k/lynx/delta=0.1', 'gsm8k/lynx/delta=0.2']);
    // the two unreadable conformal files are reported in the notes
    expect(await count(page, '#notes li')).toBeGreaterThanOrEqual(exp.brokenConformalFiles);
  });

  it('opens a problem in the trace viewer with its events highlighted, the exit marked and the rest greyed', async () => {
    const { page } = loaded;
    const key = 'gsm8k/lynx/delta=0.1';
    const runIndex = data.runs.findIndex((r) => r.key === key);
    const src = exp.runs.find((r) => `${r.benchmark}/${r.method}/${r.setting}` === key)!;
    const pi = src.predictions.findIndex((p) => p.exit && p.id !== 'gsm8k-3');
    const pred = src.predictions[pi]!;
    await page.selectOption('#trace-run', String(runIndex));
    await page.selectOption('#trace-problem', String(pi));
    await expect.poll(() => page.locator('#trace-body').getAttribute('data-problem')).toBe(pred.id);

    const text = pred.text!;
    const events = pred.events!;
    expect(await count(page, '#trace-text mark.cue')).toBe(events.length);
    // Each highlight is the cue word at its charOffset.
    const marks = await page.locator('#trace-text mark.cue').allTextContents();
    events.forEach((e, i) => {
      expect(marks[i]!.toLowerCase()).toBe(e.cue);
      expect(text.slice(e.charOffset, e.charOffset + marks[i]!.length)).toBe(marks[i]);
    });
    const exitEv = events.find((e) => e.index === pred.exit!.event)!;
    expect(await page.locator('#trace-text mark.cue.exit').getAttribute('data-event')).toBe(String(exitEv.index));
    expect(await count(page, '#trace-text #exit-flag')).toBe(1);
    // The saved part is exactly the text from the exit cue on, and the page shows the whole text unchanged.
    const shown = await page.evaluate(() => {
      const box = document.getElementById('trace-text')!.cloneNode(true) as HTMLElement;
      box.querySelectorAll('sup, .exit-flag, .cut').forEach((n) => n.remove());
      const saved = box.querySelector('.saved') as HTMLElement;
      return { all: box.textContent, saved: saved.textContent };
    });
    expect(shown.all).toBe(text);
    expect(shown.saved).toBe(text.slice(exitEv.charOffset));
    // scores: one superscript per event, one dot per scored event in the score plot, exit ringed, threshold drawn
    const sups = await page.locator('#trace-text sup.ev').allTextContents();
    expect(sups).toEqual(events.map((e) => e.score!.toFixed(3).slice(0, 4)));
    expect(await count(page, 'figure[data-kind="scores"] g.mark-event-scores circle')).toBe(events.length);
    expect(await count(page, 'figure[data-kind="scores"] g.mark-exit-event circle')).toBe(1);
    expect(await count(page, 'figure[data-kind="scores"] g.mark-threshold line')).toBe(1);
    expect(await count(page, '#trace-body tbody tr')).toBe(events.length);
    expect(await count(page, '#trace-body tr.exit-row')).toBe(1);
    const chips = await page.locator('#trace-body .chips').textContent();
    expect(chips).toContain(`gold${pred.gold}`);
    expect(chips).toContain(`extracted${pred.extracted}`);
    await page.locator('#trace-body').screenshot({ path: join(OUT, 'report-trace.png') });
    expect(loaded.errors).toEqual([]);
  });

  it('shows model text literally: </script> and markup in a trace cannot inject anything', async () => {
    const { page } = loaded;
    const runIndex = data.runs.findIndex((r) => r.key === 'gsm8k/lynx/delta=0.1');
    await page.selectOption('#trace-run', String(runIndex));
    await page.selectOption('#trace-filter', 'all');
    await page.selectOption('#trace-problem', '3');
    await expect.poll(() => page.locator('#trace-body').getAttribute('data-problem')).toBe('gsm8k-3');
    expect(await page.locator('#trace-body details.problem .body').textContent()).toBe(`Injected ${INJECTION} problem`);
    expect(await page.locator('#trace-text').textContent()).toContain(INJECTION);
    expect(await page.locator('#trace-body .chips').textContent()).toContain('<b>42</b>');
    expect(await count(page, '#trace-body img, #trace-body script, #trace-body b')).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(loaded.errors).toEqual([]);
  });

  it('says so when a run recorded no text, and filters problems', async () => {
    const { page } = loaded;
    const runIndex = data.runs.findIndex((r) => r.key === 'gsm8k/deer/threshold=0.95');
    await page.selectOption('#trace-run', String(runIndex));
    expect(await page.locator('#trace-body .empty').first().textContent()).toContain('recorded no reasoning text');
    await page.selectOption('#trace-filter', 'exited');
    const exited = exp.runs.find((r) => r.benchmark === 'gsm8k' && r.method === 'deer')!.predictions.filter((p) => p.exit).length;
    expect(await count(page, '#trace-problem option')).toBe(exited);
    await page.selectOption('#trace-filter', 'all');
    expect(loaded.errors).toEqual([]);
  });

  it('takes a screenshot of the whole page', async () => {
    const { page } = loaded;
    const runIndex = data.runs.findIndex((r) => r.key === 'gsm8k/lynx/delta=0.1');
    await page.selectOption('#trace-run', String(runIndex));
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(OUT, 'report.png'), fullPage: true });
    expect(existsSync(join(OUT, 'report.png'))).toBe(true);
    expect(loaded.errors).toEqual([]);
  });
});

describe('report page on an empty or partial experiment', () => {
  it('renders an empty root (no eval/, no conformal/) with explanations and no errors', async () => {
    const root = join(tmp, 'empty');
    mkdirSync(root, { recursive: true });
    const { path, data } = writeReport(root, join(tmp, 'empty.html'));
    expect(data.runs).toEqual([]);
    const { page, errors, external } = await open(path);
    expect(errors).toEqual([]);
    expect(external).toEqual([]);
    expect(await page.locator('#pareto .empty').textContent()).toContain('No evaluation runs');
    expect(await page.locator('#delta .empty').textContent()).toContain('no conformal/ folder');
    expect(await page.locator('#traces .empty').textContent()).toContain('No run has predictions');
    await page.close();
  });

  it('renders runs without conformal results, events or text', async () => {
    const root = join(tmp, 'partial');
    const dir = join(root, 'eval', 'aime24', 'budget', 'tokens=1000');
    mkdirSync(dir, { recursive: true });
    const rec = (i: number) => ({
      id: `a${i}`, benchmark: 'aime24', method: 'budget', setting: 'tokens=1000', problem: `p${i}`, gold: '7', extracted: i % 2 ? '7' : null,
      correct: i % 2 === 1, tokens: { reasoning: 990, exitCue: 5, answer: 5, total: 1000 }, wallMs: 10, exit: null,
    });
    writeFileSync(join(dir, 'predictions.jsonl'), [0, 1, 2, 3].map((i) => JSON.stringify(rec(i))).join('\n') + '\n{"id": "torn');
    const { path, data } = writeReport(root);
    expect(data.runs).toHaveLength(1);
    expect(data.runs[0]!.metrics.accuracy).toBe(0.5);
    const { page, errors } = await open(path);
    expect(errors).toEqual([]);
    expect(await count(page, 'figure[data-kind="pareto"] g.mark-runs circle')).toBe(1);
    expect(await page.locator('#traces .empty').first().textContent()).toContain('recorded no reasoning text');
    await page.close();
  });
});
