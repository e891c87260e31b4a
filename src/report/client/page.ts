/**
 * What every section of the report page shares: the data, the DOM helpers, the trace viewer, the method colours,
 * and `section` to add a numbered card to the page.
 *
 * Runs in the browser, serialised with toString: self-contained (see dom.ts).
 */
import type * as PlotNS from '@observablehq/plot';
import type { ReportData, ReportRun } from '../model.js';
import type { Dom } from './dom.js';
import type { TraceViewer } from './trace-viewer.js';

export interface ReportPage {
  data: ReportData;
  dom: Dom;
  traceViewer: TraceViewer;
  /** Observable Plot, from the inlined UMD bundle. */
  Plot: typeof PlotNS;
  /** The page's root element (#app); sections append to it in order. */
  app: HTMLElement;
  /** Observable's categorical palette. */
  palette: string[];
  methodColor: Map<string, string>;
  /** The method colours as a Plot color scale (full-rollout references in neutral dark grey). */
  colorScale: { type: 'categorical'; domain: string[]; range: string[] };
  /** Add a numbered card `<section id>` with its title and lead paragraph to the page. */
  section(id: string, num: number, title: string, lead: string | null): HTMLElement;
  /** A method's name with its colour swatch. */
  methodCell(method: string): HTMLElement;
  runsOf(benchmark: string): ReportRun[];
}

/** One section of the page: it appends itself to `page.app`. */
export type ReportSection = (page: ReportPage) => void;

export function reportPage(data: ReportData, dom: Dom, traceViewer: TraceViewer): ReportPage {
  const { el } = dom;
  const Plot = (window as unknown as { Plot: typeof PlotNS }).Plot;
  const app = document.getElementById('app')!;
  const palette = ['#4269d0', '#efb118', '#ff725c', '#6cc5b0', '#3ca951', '#ff8ab7', '#a463f2', '#97bbf5', '#9c6b4e', '#9498a0'];
  // The same names as REFERENCE_METHODS in model.ts (this function cannot import it).
  const REFERENCE = ['full', 'baseline', 'vanilla', 'full-rollout', 'no-exit'];
  const methodColor = new Map<string, string>();
  let ci = 0;
  for (const m of data.methods) methodColor.set(m, REFERENCE.includes(m.toLowerCase()) ? '#3b3f46' : palette[ci++ % palette.length]!);
  const colorScale = { type: 'categorical' as const, domain: data.methods, range: data.methods.map((m) => methodColor.get(m)!) };

  function section(id: string, num: number, title: string, lead: string | null): HTMLElement {
    const s = el('section', { class: 'card', id }, el('h2', null, el('span', { class: 'num' }, `${num}`), title));
    if (lead) s.append(el('p', { class: 'lead' }, lead));
    app.append(s);
    return s;
  }
  function methodCell(m: string): HTMLElement {
    return el('span', null, el('span', { class: 'swatch', style: `background:${methodColor.get(m) ?? '#888'}` }), m);
  }
  const runsOf = (b: string) => data.runs.filter((r) => r.benchmark === b);

  return { data, dom, traceViewer, Plot, app, palette, methodColor, colorScale, section, methodCell, runsOf };
}
