/**
 * The playground `lynx serve` answers at `/`, in Debian's Chromium driven headless (playwright-core, as the report
 * tests), against a running server on the demo reasoner: it loads with no console errors, a submitted problem streams
 * tokens, cue events are marked with their scores, the exit appears where `lynx run` exits for the same seed and δ,
 * the side-by-side view shows both token counts, a finished run opens in the trace viewer, and a phone-width window
 * has no horizontal scroll. Screenshots: test-output/playground*.png.
 */
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shippedDemo } from '../src/demo/shipped.js';
import { answerWithLynx } from '../src/pipeline/answer.js';
import { buildApp } from '../src/server/app.js';
import { ModelHost } from '../src/server/host.js';
import { loadBenchmark } from '../src/tasks/registry.js';

const CHROMIUM = process.env.LYNX_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const OUT = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'test-output');
const demo = shippedDemo();
const DELTA = 0.3;

let host: ModelHost;
let app: ReturnType<typeof buildApp>;
let url: string;
let browser: Browser;
/** A demo problem (its index in the page's list) and a seed where `lynx run` exits at DELTA, and where it exits. */
let pick: { index: number; seed: number; event: number; tokens: number };

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  host = new ModelHost({ model: demo.model, probe: demo.root, servedName: 'lynx-demo', parallel: 2, queue: 4, contextPerRequest: 1024, threads: 1, kvType: 'f32' });
  app = buildApp(host, { keepAliveMs: 1000 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  await host.load();
  const problems = loadBenchmark('demo:test', { limit: 40 });
  for (let index = 0; index < problems.length && !pick; index++) {
    const r = await answerWithLynx({ model: host.ready.model, probe: demo.root, rule: 'lynx', delta: DELTA, question: problems[index]!.problem, maxTokens: 600, sampler: { temperature: 0.6, topP: 0.95 }, seed: 0, exitCue: 'paper' });
    if (r.outcome.exit && r.outcome.exit.event > 0) pick = { index, seed: 0, event: r.outcome.exit.event, tokens: r.outcome.tokens.total };
  }
  expect(pick).toBeDefined();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  host?.dispose();
});

async function open(width: number, height: number): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width, height } });
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${url}/`);
  await page.waitForSelector('[data-lynx-ready=true]', { state: 'attached' });
  return { page, errors };
}

const idle = (page: Page) => page.waitForFunction(() => document.documentElement.getAttribute('data-busy') === 'false', null, { timeout: 90_000 });

describe('the playground', () => {
  it('streams a run, marks the scored cue words, and exits where lynx run exits for the same seed', async () => {
    const { page, errors } = await open(1200, 900);
    await page.selectOption('#problem', String(pick.index));
    await page.selectOption('#delta', String(DELTA));
    await page.fill('#seed', String(pick.seed));
    // Count the redraws of the reasoning while it streams: many, not one at the end.
    await page.evaluate(() => {
      (window as unknown as { draws: number[] }).draws = [];
      new MutationObserver(() => {
        const t = document.querySelector('.pg-text')?.textContent ?? '';
        (window as unknown as { draws: number[] }).draws.push(t.length);
      }).observe(document.getElementById('panes')!, { childList: true, subtree: true });
    });
    await page.click('#run');
    await idle(page);
    const draws = await page.evaluate(() => (window as unknown as { draws: number[] }).draws);
    expect(new Set(draws).size).toBeGreaterThan(10);
    expect(draws.some((d) => d > 0 && d < draws[draws.length - 1]!)).toBe(true);
    const marks = await page.$$eval('mark.cue', (ms) => ms.map((m) => ({ score: Number(m.getAttribute('data-score')), exit: m.classList.contains('cue-exit') })));
    expect(marks.length).toBe(pick.event + 1);
    for (const m of marks) expect(m.score).toBeGreaterThan(0);
    expect(marks.filter((m) => m.exit)).toHaveLength(1);
    expect(await page.textContent('.pg-exit')).toMatch(/EXIT/);
    expect(await page.textContent('.pane .tokens')).toBe(`${pick.tokens} tokens`);
    expect(await page.textContent('.pane .badge')).toContain(`exited at cue #${pick.event}`);
    await page.click('.open-trace');
    await page.waitForSelector('#trace-viewer .trace-view');
    expect(await page.$$eval('#trace-viewer .trace-text mark, #trace-viewer mark', (m) => m.length)).toBeGreaterThan(0);
    await page.screenshot({ path: join(OUT, 'playground-run.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('runs full thinking and early exit side by side with one seed and shows both token counts', async () => {
    const { page, errors } = await open(1200, 900);
    await page.selectOption('#problem', String(pick.index));
    await page.selectOption('#delta', String(DELTA));
    await page.click('#compare');
    await idle(page);
    const counts = await page.$$eval('.pane .tokens', (els) => els.map((e) => e.textContent));
    expect(counts).toHaveLength(2);
    const [full, early] = counts.map((c) => Number(/^(\d+) tokens$/.exec(c ?? '')![1]));
    expect(early).toBe(pick.tokens);
    expect(full).toBeGreaterThan(early!);
    expect(await page.textContent('#tokens-saved')).toContain(`${full! - early!} tokens saved`);
    expect(await page.textContent('#answer-changed')).toMatch(/same answer|answer changed/);
    await page.screenshot({ path: join(OUT, 'playground.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('fits a phone-width window', async () => {
    const { page, errors } = await open(390, 844);
    await page.selectOption('#problem', String(pick.index));
    await page.click('#compare');
    await idle(page);
    const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: document.documentElement.clientWidth }));
    expect(scroll).toBeLessThanOrEqual(width);
    await page.screenshot({ path: join(OUT, 'playground-narrow.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });
});
