/**
 * The trace viewer: one rollout's reasoning text with its cue events highlighted in place (probe score as a
 * superscript, colour by label), the exit flagged and the text after it greyed as saved, the probe score of every
 * event against token position with the threshold, and a table of the events (clicking a row scrolls to its
 * highlight). It draws a `TraceView`, so any page can use it: the report's trace section builds one per problem,
 * and a second page includes `traceViewerScript()` (see ../scripts.ts, docs/report.md) and calls
 * `LynxTraceViewer.show(container, view)`.
 *
 * Runs in the browser, serialised with toString: self-contained (see dom.ts). The score plot needs Observable
 * Plot as the global `Plot` (and Plot's UMD build needs the global `d3`).
 */
import type * as PlotNS from '@observablehq/plot';
import type { Dom } from './dom.js';

/** A cue event of a trace. The optional fields read as "unknown" when absent (null and absent are the same). */
export interface TraceEvent {
  /** Ordinal of the event in the trace; `TraceView.exit.event` refers to it. */
  index: number;
  /** Token index in the generated text: the event's x in the score plot. */
  position: number;
  /** UTF-16 offset of the cue word in `TraceView.text`: the highlight is the word that starts there. */
  charOffset: number;
  /** Canonical cue, e.g. "wait" (the text may say "Wait"). */
  cue: string;
  /** Probe p(correct) at the event; unscored events have no dot in the plot and show `#index` in the text. */
  score?: number | null;
  /** 1: a forced exit here answers correctly (green); 0: it answers wrongly (red); unknown: amber. */
  label?: 0 | 1 | null;
  /** A synthetic event (not a cue the model wrote): its highlight is dashed. */
  synthetic?: boolean;
  /** The answer a forced exit at this event gives; in the event's tooltip and the event table. */
  exitAnswer?: string | null;
}

/** Everything the viewer draws for one rollout. */
export interface TraceView {
  /** The reasoning text; for a replayed run, the full rollout's text (the part after the exit is then the saving). */
  text: string | null;
  /** Shown in place of the text when `text` is null (why there is none). */
  textMissing?: string;
  /** Characters cut from the end of `text` before it reached the page; said at the end of the text. */
  textCut?: number;
  /** The events in text order (non-decreasing charOffset). */
  events: TraceEvent[];
  /** The probe threshold of the run, drawn as a dashed line in the score plot; null: none. */
  threshold: number | null;
  /** Where the run stopped: the exit event's index and token position; null: it ran to the end. */
  exit: { event: number; position: number } | null;
  /** Tokens the run spent (reasoning, exit cue and answer). */
  tokens: number;
  /** Tokens of the full rollout of the same problem, when known: the saving is the difference. */
  fullRolloutTokens: number | null;
  /** The trace is a full-rollout reference run: no note that the recorded text ends at an exit. */
  reference?: boolean;
}

export interface TraceViewOptions {
  /** Element ids to give the text box and the exit flag (the report's page uses 'trace-text' and 'exit-flag'). Ids
   * must be unique in a page, so a page showing several traces leaves them out and uses the classes. */
  ids?: { text?: string; exitFlag?: string };
}

/** What `traceViewer` returns; the standalone script makes it the global `LynxTraceViewer`. */
export interface TraceViewer {
  /** The viewer as a new element (`div.trace-view`), not yet in the page. */
  render(view: TraceView, options?: TraceViewOptions): HTMLElement;
  /** Replace the content of `container` with the viewer; returns the viewer element. */
  show(container: Element, view: TraceView, options?: TraceViewOptions): HTMLElement;
  /** The tooltip of an event (cue, position, score, label, forced-exit answer). */
  eventTitle(e: TraceEvent): string;
}

export function traceViewer(dom: Dom): TraceViewer {
  const { el, int, score, empty, figure, sortableTable } = dom;

  /** An event with its unknowns spelled null, so the drawing code has one case. */
  type Event = Required<TraceEvent>;
  const normalise = (e: TraceEvent): Event => ({
    index: e.index,
    position: e.position,
    charOffset: e.charOffset,
    cue: e.cue,
    score: e.score ?? null,
    label: e.label ?? null,
    synthetic: e.synthetic ?? false,
    exitAnswer: e.exitAnswer ?? null,
  });

  function eventTitle(e: TraceEvent): string {
    const label = e.label ?? null;
    return [
      `event #${e.index}${e.synthetic ? ' (synthetic)' : ''}`,
      `cue “${e.cue}” at token ${e.position}`,
      `probe score ${score(e.score ?? null)}`,
      `label ${label === null ? '—' : label === 1 ? '1 (ready: forced answer correct)' : '0 (not ready: forced answer wrong)'}`,
      (e.exitAnswer ?? null) !== null ? `forced-exit answer: ${e.exitAnswer}` : '',
    ]
      .filter(Boolean)
      .join('\n');
  }

  const WORD = /[\p{L}\p{N}\p{M}_]+/uy;
  /** The span an event highlights: the word starting at its offset (skipping a little leading space), else nothing. */
  function eventSpan(text: string, off: number): [number, number] {
    for (let k = off; k < Math.min(text.length, off + 3); k++) {
      WORD.lastIndex = k;
      const m = WORD.exec(text);
      if (m) return [k, k + m[0].length];
      if (!/\s/.test(text[k]!)) break;
    }
    return [off, off];
  }

  function renderText(view: TraceView, text: string, events: Event[], options: TraceViewOptions): HTMLElement {
    const box = el('div', { class: 'trace-text', ...(options.ids?.text ? { id: options.ids.text } : {}) });
    const exit = view.exit;
    const exitEv = exit ? events.find((e) => e.index === exit.event) ?? null : null;
    let target: HTMLElement = box;
    let cursor = 0;
    const saved = view.fullRolloutTokens !== null ? view.fullRolloutTokens - view.tokens : null;
    for (const e of events) {
      const off = Math.max(cursor, Math.min(text.length, Math.max(0, e.charOffset)));
      const [a, b] = eventSpan(text, off);
      if (a > cursor) target.append(text.slice(cursor, a));
      const isExit = e === exitEv;
      if (isExit) {
        const flagId: Record<string, string> = options.ids?.exitFlag ? { id: options.ids.exitFlag } : {};
        box.append(el('span', { class: 'exit-flag', ...flagId, title: `exit at event #${e.index}, token ${e.position}` }, `EXIT${saved !== null && saved > 0 ? ` · ${int(saved)} tokens saved` : ''}`));
        target = el('span', { class: 'saved', title: 'generated by the full rollout after the exit point: the tokens the exit saved' });
        box.append(target);
      }
      const cls = `cue ${e.label === 1 ? 'l1' : e.label === 0 ? 'l0' : 'lu'}${e.synthetic ? ' synthetic' : ''}${isExit ? ' exit' : ''}${a === b ? ' empty' : ''}`;
      const mark = el('mark', { class: cls, 'data-event': String(e.index), title: eventTitle(e) });
      mark.textContent = text.slice(a, b);
      target.append(mark, el('sup', { class: 'ev' }, e.score === null ? `#${e.index}` : score(e.score).slice(0, 4)));
      cursor = b;
    }
    if (cursor < text.length) target.append(text.slice(cursor));
    const cut = view.textCut ?? 0;
    if (cut > 0) target.append(el('span', { class: 'cut' }, `\n[… ${int(cut)} more characters not embedded in this report]`));
    if (exit && !exitEv) box.prepend(el('div', { class: 'cut' }, `The exit (event #${exit.event}, token ${exit.position}) is not among the recorded events, so it cannot be placed in the text.\n`));
    if (exit && exitEv && cursor >= text.length && text.length - exitEv.charOffset < 3 && !view.reference) {
      target.append(el('span', { class: 'cut' }, '(the recorded trace ends at the exit)'));
    }
    return box;
  }

  function renderScores(view: TraceView, events: Event[]): Element | null {
    const Plot = (window as unknown as { Plot?: typeof PlotNS }).Plot;
    const evs = events.filter((e) => e.score !== null);
    if (evs.length === 0) return null;
    if (!Plot) throw new Error('the trace viewer draws scores with Observable Plot: load d3 and Plot (the global Plot) before it');
    const lab = (e: Event) => (e.label === 1 ? 'ready (label 1)' : e.label === 0 ? 'not ready (label 0)' : 'unlabelled');
    const exit = view.exit;
    const exitEv = exit ? evs.filter((e) => e.index === exit.event) : [];
    const thr = view.threshold !== null ? [view.threshold] : [];
    const full = view.fullRolloutTokens;
    const xmax = Math.max(view.tokens, full ?? 0, ...evs.map((e) => e.position)) || 1;
    const savedRegion = exitEv.length && full !== null && full > exitEv[0]!.position ? [{ x1: exitEv[0]!.position, x2: full }] : [];
    return Plot.plot({
      width: 1120,
      height: 200,
      marginLeft: 48,
      marginRight: 120,
      marginTop: 24,
      marginBottom: 36,
      style: dom.plotStyle,
      x: { label: 'Token position →', domain: [0, xmax], grid: true },
      y: { label: '↑ Probe score', domain: [0, 1], grid: true, ticks: 5 },
      color: { domain: ['ready (label 1)', 'not ready (label 0)', 'unlabelled'], range: ['#3ca951', '#e0533d', '#d49a00'], legend: true },
      marks: [
        Plot.rect(savedRegion, { x1: 'x1', x2: 'x2', fill: '#8a919c', fillOpacity: 0.09, className: 'mark-saved-region' }),
        Plot.text(savedRegion, { x: 'x2', y: 1, text: () => 'saved', textAnchor: 'end', dx: -4, dy: 8, fill: '#8a919c', className: 'mark-saved-label' }),
        Plot.ruleY(thr, { stroke: '#2f5fc4', strokeDasharray: '5 4', className: 'mark-threshold' }),
        Plot.text(thr, { y: (t: number) => t, x: xmax, text: (t: number) => `threshold ${t.toFixed(3)}`, textAnchor: 'start', dx: 6, fill: '#2f5fc4', className: 'mark-threshold-label' }),
        Plot.line(evs, { x: 'position', y: 'score', stroke: '#b8bec8', strokeWidth: 1.2, className: 'mark-score-line' }),
        Plot.ruleX(exitEv, { x: 'position', stroke: '#c0262d', strokeWidth: 1.2, strokeDasharray: '3 3', className: 'mark-exit-line' }),
        Plot.dot(exitEv, { x: 'position', y: 'score', r: 8, stroke: '#c0262d', strokeWidth: 2, className: 'mark-exit-event' }),
        Plot.dot(evs, { x: 'position', y: 'score', fill: lab, r: 4, stroke: 'white', className: 'mark-event-scores', title: eventTitle, tip: true }),
      ],
    });
  }

  function renderEvents(view: TraceView, events: Event[], root: HTMLElement): HTMLElement {
    const exitIdx = view.exit ? view.exit.event : -1;
    const rows = events.map((e) => ({
      cls: `clickable${e.index === exitIdx ? ' exit-row' : ''}`,
      attrs: { 'data-event': String(e.index) },
      cells: [
        e.index === exitIdx ? el('span', null, `${e.index} `, el('span', { class: 'pill exit' }, 'exit')) : String(e.index),
        int(e.position),
        int(e.charOffset),
        `${e.cue}${e.synthetic ? ' (synthetic)' : ''}`,
        score(e.score),
        e.label === null ? '—' : el('span', { class: `pill l${e.label}` }, e.label === 1 ? '1 ready' : '0 not ready'),
        e.exitAnswer ?? '—',
      ],
    }));
    const wrap = el(
      'div',
      { class: 'events-wrap' },
      sortableTable(
        [
          { label: '#', num: true, key: (i) => events[i]!.index },
          { label: 'Token', num: true, key: (i) => events[i]!.position },
          { label: 'Char', num: true, key: (i) => events[i]!.charOffset },
          { label: 'Cue', key: (i) => events[i]!.cue },
          { label: 'Probe score', num: true, key: (i) => events[i]!.score ?? -1 },
          { label: 'Label', key: (i) => events[i]!.label ?? -1 },
          { label: 'Forced-exit answer' },
        ],
        rows,
      ),
    );
    wrap.addEventListener('click', (ev) => {
      const tr = (ev.target as Element).closest('tr[data-event]');
      if (!tr) return;
      // This viewer's own highlight: a page may show several traces.
      const mark = root.querySelector(`.trace-text mark[data-event="${tr.getAttribute('data-event')}"]`);
      if (!mark) return;
      mark.scrollIntoView({ block: 'center', behavior: 'smooth' });
      mark.classList.remove('flash');
      void (mark as HTMLElement).offsetWidth;
      mark.classList.add('flash');
    });
    return wrap;
  }

  function legend(): HTMLElement {
    const sample = (cls: string, t: string) => el('span', null, el('span', { class: `sample ${cls}` }, t));
    return el(
      'div',
      { class: 'text-legend' },
      sample('lg1', 'cue'),
      'forced answer correct',
      sample('lg0', 'cue'),
      'forced answer wrong',
      sample('lgu', 'cue'),
      'unlabelled',
      sample('lgx', 'EXIT'),
      'exit point',
      sample('lgs', 'text'),
      'saved (after the exit)',
    );
  }

  function render(view: TraceView, options: TraceViewOptions = {}): HTMLElement {
    const root = el('div', { class: 'trace-view' });
    const events = view.events.map(normalise);
    const plot = renderScores(view, events);
    if (plot) root.append(figure('Probe score at each cue event', view.threshold !== null ? 'dashed: the run’s threshold' : null, plot, { 'data-kind': 'scores' }));
    if (view.text === null) root.append(empty(view.textMissing ?? 'No reasoning text was recorded for this trace.'));
    else root.append(legend(), renderText(view, view.text, events, options));
    if (events.length) root.append(el('div', { style: 'margin-top:12px' }), renderEvents(view, events, root));
    return root;
  }

  function show(container: Element, view: TraceView, options: TraceViewOptions = {}): HTMLElement {
    const root = render(view, options);
    container.replaceChildren(root);
    return root;
  }

  return { render, show, eventTitle };
}
