/**
 * The trace viewer on a page of its own, as a second page (the playground) uses it: `traceViewerAssets()` inlined,
 * `LynxTraceViewer.show(container, view)` called with hand-made `TraceView`s, in headless Chromium (as
 * report-page.test.ts). Also: a client function that reaches an import is refused when the script is made.
 * Screenshot: test-output/trace-viewer.png.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { domKit } from '../src/report/client/dom.js';
import { clientSource, jsonForScript, traceViewerAssets, traceViewerScript, type TraceEvent, type TraceView } from '../src/report/index.js';

const CHROMIUM = process.env.LYNX_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const OUT = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'test-output');
const INJECTION = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> <b>bold</b>';

/** Events at each occurrence of the given cue words, in text order. */
function eventsAt(text: string, cues: string[], extra: (i: number) => Partial<TraceEvent> = () => ({})): TraceEvent[] {
  let from = 0;
  return cues.map((cue, index) => {
    const charOffset = text.indexOf(cue, from);
    if (charOffset < 0) throw new Error(`no ${cue} after ${from}`);
    from = charOffset + cue.length;
    return { index, position: Math.floor(charOffset / 4), charOffset, cue: cue.toLowerCase(), ...extra(index) };
  });
}

const fullText = 'Add 2 and 3. Wait, 2 + 3 = 5. Hmm, check it: 5 - 3 = 2. Wait, so it is 5.\n\nAlternatively count: 3, 4, 5. Done.';
const scored: TraceView = {
  text: fullText,
  events: eventsAt(fullText, ['Wait', 'Hmm', 'Wait', 'Alternatively'], (i) => ({ score: [0.31, 0.86, 0.93, 0.97][i], label: i === 0 ? 0 : 1, exitAnswer: i === 0 ? '6' : '5', synthetic: i === 3 })),
  threshold: 0.8,
  exit: { event: 1, position: 7 },
  tokens: 30,
  fullRolloutTokens: 50,
};
const minimalText = `Think. Wait, the input says ${INJECTION}. Hmm, that is text, not markup.`;
const minimal: TraceView = { text: minimalText, events: eventsAt(minimalText, ['Wait', 'Hmm']), threshold: null, exit: null, tokens: 20, fullRolloutTokens: null };
const noText: TraceView = { ...scored, text: null, textMissing: 'No text for this one.' };

let browser: Browser;
let tmp: string;
let page: Page;
const errors: string[] = [];
const external: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's package (apt-get install -y chromium) or set LYNX_CHROMIUM to its path. The trace viewer tests need it and do not skip.`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  tmp = mkdtempSync(join(tmpdir(), 'lynx-trace-viewer-'));
  mkdirSync(OUT, { recursive: true });
  const { css, scripts } = traceViewerAssets();
  const html = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><style>${css}</style></head>
<body><div id="app"><div id="a"></div><div id="b"></div><div id="c"></div></div>
<script type="application/json" id="views">${jsonForScript([scored, minimal, noText])}</script>
${scripts.map((s) => `<script>${s}</script>`).join('\n')}
<script>
var views = JSON.parse(document.getElementById('views').textContent);
LynxTraceViewer.show(document.getElementById('a'), views[0]);
LynxTraceViewer.show(document.getElementById('b'), views[1]);
LynxTraceViewer.show(document.getElementById('c'), views[2], { ids: { text: 'c-text', exitFlag: 'c-exit' } });
document.documentElement.setAttribute('data-ready', 'true');
</script></body></html>`;
  const path = join(tmp, 'viewer.html');
  writeFileSync(path, html);
  page = await browser.newPage({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
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
  await page.waitForSelector('html[data-ready="true"]', { timeout: 20_000 });
});

afterAll(async () => {
  await browser?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const count = (selector: string) => page.locator(selector).count();

describe('trace viewer on a page of its own', () => {
  it('loads with no errors or network requests and gives ids only when asked', async () => {
    expect(errors).toEqual([]);
    expect(external).toEqual([]);
    expect(await count('.trace-view')).toBe(3);
    expect(await count('#a [id], #b [id]')).toBe(0);
    expect(await count('#c #c-text')).toBe(0); // no text in view c, so no text box
    const rendered = await page.evaluate((v) => {
      const w = window as unknown as { LynxTraceViewer: { render(v: unknown, o?: unknown): HTMLElement } };
      const root = w.LynxTraceViewer.render(v, { ids: { text: 't1', exitFlag: 'f1' } });
      return { cls: root.className, connected: root.isConnected, text: !!root.querySelector('#t1'), flag: root.querySelector('#f1')?.textContent };
    }, scored);
    expect(rendered).toEqual({ cls: 'trace-view', connected: false, text: true, flag: 'EXIT · 20 tokens saved' });
  });

  it('highlights each event at its offset, flags the exit and greys the text after it', async () => {
    const marks = await page.locator('#a .trace-text mark.cue').allTextContents();
    expect(marks).toEqual(['Wait', 'Hmm', 'Wait', 'Alternatively']);
    scored.events.forEach((e, i) => expect(fullText.slice(e.charOffset, e.charOffset + marks[i]!.length)).toBe(marks[i]));
    const classes = await page.locator('#a .trace-text mark.cue').evaluateAll((ms) => ms.map((m) => m.className));
    expect(classes).toEqual(['cue l0', 'cue l1 exit', 'cue l1', 'cue l1 synthetic']);
    expect(await page.locator('#a .exit-flag').textContent()).toBe('EXIT · 20 tokens saved');
    const shown = await page.evaluate(() => {
      const box = document.querySelector('#a .trace-text')!.cloneNode(true) as HTMLElement;
      box.querySelectorAll('sup, .exit-flag, .cut').forEach((n) => n.remove());
      return { all: box.textContent, saved: box.querySelector('.saved')!.textContent };
    });
    expect(shown.all).toBe(fullText);
    expect(shown.saved).toBe(fullText.slice(scored.events[1]!.charOffset));
    expect(await page.locator('#a sup.ev').allTextContents()).toEqual(['0.31', '0.86', '0.93', '0.97']);
    expect(await page.locator('#a mark.cue').first().getAttribute('title')).toContain('forced-exit answer: 6');
  });

  it('draws the scores, the threshold, the exit and the saved region, and lists the events', async () => {
    expect(await count('#a figure[data-kind="scores"] g.mark-event-scores circle')).toBe(4);
    expect(await count('#a figure[data-kind="scores"] g.mark-exit-event circle')).toBe(1);
    expect(await count('#a figure[data-kind="scores"] g.mark-threshold line')).toBe(1);
    expect(await count('#a figure[data-kind="scores"] g.mark-saved-region rect')).toBe(1);
    expect(await count('#a tbody tr')).toBe(4);
    expect(await count('#a tr.exit-row')).toBe(1);
    expect(await page.locator('#a tbody tr').last().textContent()).toContain('alternatively (synthetic)');
  });

  it('reads absent scores and labels as unknown, and shows model text literally', async () => {
    expect(await count('#b figure')).toBe(0);
    expect(await count('#b .exit-flag, #b .saved')).toBe(0);
    expect(await page.locator('#b .trace-text mark.cue').evaluateAll((ms) => ms.map((m) => m.className))).toEqual(['cue lu', 'cue lu']);
    expect(await page.locator('#b sup.ev').allTextContents()).toEqual(['#0', '#1']);
    const e0 = minimal.events[0]!;
    // #, token, char, cue, score, label, forced-exit answer
    expect(await page.locator('#b tbody tr').first().locator('td').allTextContents()).toEqual(['0', String(e0.position), String(e0.charOffset), 'wait', '—', '—', '—']);
    expect(await page.locator('#b .trace-text').textContent()).toContain(INJECTION);
    expect(await count('#b img, #b script, #b b')).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  });

  it('says why there is no text, and still draws the scores and the events', async () => {
    expect(await page.locator('#c .empty').textContent()).toBe('No text for this one.');
    expect(await count('#c .trace-text')).toBe(0);
    expect(await count('#c g.mark-event-scores circle')).toBe(4);
    expect(await count('#c tbody tr')).toBe(4);
  });

  it('scrolls to the clicked event in its own viewer only', async () => {
    await page.locator('#b tbody tr[data-event="1"]').click();
    await expect.poll(() => page.locator('#b mark[data-event="1"]').getAttribute('class')).toContain('flash');
    expect(await count('#a mark.flash')).toBe(0);
    await page.screenshot({ path: join(OUT, 'trace-viewer.png'), fullPage: true });
    expect(errors).toEqual([]);
  });

  it('says what is missing when Plot is not loaded and there are scores to draw', async () => {
    const p = await browser.newPage();
    await p.setContent(`<!DOCTYPE html><html><body><div id="x"></div><script>${traceViewerScript()}</script></body></html>`);
    const res = await p.evaluate((views) => {
      const w = window as unknown as { LynxTraceViewer: { show(c: Element, v: unknown): HTMLElement } };
      const x = document.getElementById('x')!;
      const noScores = w.LynxTraceViewer.show(x, views[0]).querySelectorAll('mark.cue').length;
      try {
        w.LynxTraceViewer.show(x, views[1]);
        return { noScores, error: '' };
      } catch (e) {
        return { noScores, error: (e as Error).message };
      }
    }, [minimal, scored]);
    expect(res.noScores).toBe(2);
    expect(res.error).toContain('Observable Plot');
    await p.close();
  });
});

describe('client sources', () => {
  it('refuses a page function that reaches an imported value', () => {
    const usesImport = () => domKit().int(1);
    expect(() => clientSource(usesImport)).toThrow(/usesImport uses an imported value/);
    expect(clientSource(domKit)).toContain('function domKit');
  });
});
