/**
 * The page script. `reportClient` is serialized with Function.prototype.toString and runs in the browser with the
 * globals `Plot` and `d3` from the inlined UMD bundles, so it must be self-contained: no imports other than types, no
 * references to anything outside its own body.
 *
 * Model text (problems, reasoning, answers) only ever reaches the page through textContent and attribute setters.
 */
import type * as PlotNS from '@observablehq/plot';
import type { PrematurePoint, ReportData, ReportEvent, ReportProblem, ReportRun } from './model.js';

export function reportClient(data: ReportData): void {
  const Plot = (window as unknown as { Plot: typeof PlotNS }).Plot;
  const app = document.getElementById('app')!;

  // ---------- small DOM and number helpers ----------
  type Child = Node | string | number | null | undefined | false;
  function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> | null, ...children: Child[]): HTMLElementTagNameMap[K] {
    const e = document.createElement(tag);
    if (attrs) for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }
  const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const int = (x: number) => intFmt.format(x);
  const pct = (x: number | null, digits = 1) => (x === null ? '—' : `${(x * 100).toFixed(digits)}%`);
  const pp = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(1)} pp`;
  const score = (x: number | null) => (x === null ? '—' : x.toFixed(3));
  const secs = (s: number) => {
    if (s < 60) return `${s.toFixed(1)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  };
  const natural = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });
  const uniq = <T,>(xs: T[]) => [...new Set(xs)];

  // Observable's categorical palette; full-rollout references are drawn in neutral dark grey.
  const PALETTE = ['#4269d0', '#efb118', '#ff725c', '#6cc5b0', '#3ca951', '#ff8ab7', '#a463f2', '#97bbf5', '#9c6b4e', '#9498a0'];
  const REFERENCE = ['full', 'baseline', 'vanilla', 'full-rollout', 'no-exit'];
  const methodColor = new Map<string, string>();
  let ci = 0;
  for (const m of data.methods) methodColor.set(m, REFERENCE.includes(m.toLowerCase()) ? '#3b3f46' : PALETTE[ci++ % PALETTE.length]!);
  const colorScale = { type: 'categorical' as const, domain: data.methods, range: data.methods.map((m) => methodColor.get(m)!) };
  const PLOT_STYLE = { fontSize: '11px', fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif', overflow: 'visible' };

  function section(id: string, num: number, title: string, lead: string | null): HTMLElement {
    const s = el('section', { class: 'card', id }, el('h2', null, el('span', { class: 'num' }, `${num}`), title));
    if (lead) s.append(el('p', { class: 'lead' }, lead));
    app.append(s);
    return s;
  }
  function empty(msg: string): HTMLElement {
    return el('div', { class: 'empty' }, msg);
  }
  function guarded(target: HTMLElement, what: string, f: () => void): void {
    try {
      f();
    } catch (e) {
      console.error(`lynx report: ${what} failed`, e);
      target.append(el('div', { class: 'error' }, `${what} failed: ${(e as Error).message}`));
    }
  }
  function figure(title: string, sub: string | null, plot: Element, attrs: Record<string, string> = {}): HTMLElement {
    return el('figure', { class: 'plot', ...attrs }, el('figcaption', null, title, sub ? el('span', { class: 'sub' }, sub) : null), plot);
  }
  function sortableTable(
    columns: { label: string; num?: boolean; title?: string; key?: (i: number) => number | string }[],
    rows: { cells: (Node | string)[]; cls?: string; attrs?: Record<string, string> }[],
  ): HTMLElement {
    const tbody = el('tbody', null);
    let order = rows.map((_, i) => i);
    let sortCol = -1;
    let desc = false;
    const ths = columns.map((c, ci) => {
      const th = el('th', { class: `${c.num ? 'num ' : ''}${c.key ? 'sortable' : ''}`, ...(c.title ? { title: c.title } : {}) }, c.label);
      if (c.key) {
        th.addEventListener('click', () => {
          desc = sortCol === ci ? !desc : false;
          sortCol = ci;
          const k = c.key!;
          order = rows.map((_, i) => i).sort((a, b) => {
            const x = k(a);
            const y = k(b);
            const r = typeof x === 'number' && typeof y === 'number' ? x - y : natural.compare(String(x), String(y));
            return desc ? -r : r;
          });
          ths.forEach((t, j) => {
            t.querySelector('.arrow')?.remove();
            if (j === ci) t.append(el('span', { class: 'arrow' }, desc ? '▼' : '▲'));
          });
          draw();
        });
      }
      return th;
    });
    function draw() {
      tbody.replaceChildren(
        ...order.map((i, pos) => {
          const r = rows[i]!;
          const cls = sortCol === -1 ? r.cls ?? '' : (r.cls ?? '').replace('group-start', '');
          const tr = el('tr', { ...(r.attrs ?? {}), ...(cls.trim() ? { class: cls.trim() } : {}) });
          if (pos === 0) tr.classList.remove('group-start');
          r.cells.forEach((c, j) => tr.append(el('td', columns[j]!.num ? { class: 'num' } : null, c)));
          return tr;
        }),
      );
    }
    draw();
    return el('div', { class: 'table-wrap' }, el('table', { class: 'data' }, el('thead', null, el('tr', null, ...ths)), tbody));
  }
  function methodCell(m: string): HTMLElement {
    return el('span', null, el('span', { class: 'swatch', style: `background:${methodColor.get(m) ?? '#888'}` }), m);
  }

  // ---------- header ----------
  const nRuns = data.runs.length;
  app.append(
    el(
      'header',
      { class: 'page' },
      el('h1', null, data.title),
      el(
        'p',
        { class: 'meta' },
        'Experiment ',
        el('code', null, data.rootName),
        ` · ${nRuns} run${nRuns === 1 ? '' : 's'} · ${data.benchmarks.length} benchmark${data.benchmarks.length === 1 ? '' : 's'} · ${data.methods.length} method${data.methods.length === 1 ? '' : 's'} · generated ${data.generatedAt.replace('T', ' ').slice(0, 16)} UTC`,
      ),
      el(
        'nav',
        { class: 'toc' },
        ...[
          ['#pareto', 'Accuracy vs. tokens'],
          ['#delta', 'Premature exits vs. δ'],
          ['#savings', 'Token savings'],
          ['#summary', 'Summary table'],
          ['#traces', 'Trace viewer'],
          ...(data.warnings.length ? [['#notes', `Notes (${data.warnings.length})`]] : []),
        ].map(([href, text]) => el('a', { href: href! }, text!)),
      ),
    ),
  );

  const byBenchmark = (b: string) => data.runs.filter((r) => r.benchmark === b);

  // ---------- 1. accuracy against tokens, with the Pareto frontier ----------
  {
    const s = section(
      'pareto',
      1,
      'Accuracy against average tokens',
      'One point per run (method and setting); whiskers are 95% intervals of accuracy and of average tokens, output tokens (the response a user reads) or decoded tokens (every token sampled: probes, trials, extra traces, forced exits) as the switch says. The dashed step line is the Pareto frontier, the best accuracy reached within a token budget; ringed points are on it and are labelled with their setting. ★ marks the full rollout when the runs report it.',
    );
    guarded(s, 'the accuracy/token plots', () => {
      if (nRuns === 0) {
        s.append(empty('No evaluation runs were found under eval/<benchmark>/<method>/<setting>/.'));
        return;
      }
      s.append(el('div', { class: 'legend-row' }, Plot.legend({ color: colorScale, swatchSize: 11, style: PLOT_STYLE }) as Element));
      // Output tokens (what the user reads) or decoded tokens (all the work); the data model computes both frontiers.
      const kinds = data.tokenKinds;
      const kindSelect = el('select', { id: 'pareto-token-kind', 'aria-label': 'token count on the x axis' }, ...kinds.map((k) => el('option', { value: k }, k === 'output' ? 'output tokens' : 'decoded tokens')));
      if (kinds.length > 1) s.append(el('p', { class: 'controls' }, 'x axis: ', kindSelect));
      const grid = el('div', { class: 'grid' });
      s.append(grid);
      const drawAll = (kind: 'output' | 'decoded') => {
      grid.replaceChildren();
      for (const b of data.benchmarks) {
        const pts = byBenchmark(b).filter((r) => r.axes[kind] !== null).map((r) => ({
          method: r.method,
          setting: r.setting,
          label: r.label,
          accuracy: r.metrics.accuracy,
          accLo: r.metrics.accuracyCi95[0],
          accHi: r.metrics.accuracyCi95[1],
          avgTokens: r.axes[kind]!.avg,
          tokLo: r.axes[kind]!.ci[0],
          tokHi: r.axes[kind]!.ci[1],
          n: r.metrics.n,
          pareto: r.axes[kind]!.pareto,
        }));
        const front = pts.filter((p) => p.pareto).sort((a, c) => a.avgTokens - c.avgTokens || a.accuracy - c.accuracy);
        const base = data.baselines
          .filter((x) => x.benchmark === b && (kind === 'output' || x.avgDecoded !== null))
          .map((x) => ({ ...x, avgTokens: kind === 'output' ? x.avgTokens : x.avgDecoded! }));
        const ys = [...pts.flatMap((p) => [p.accLo, p.accHi]), ...base.map((x) => x.accuracy)];
        const pad = Math.max(0.02, (Math.max(...ys) - Math.min(...ys)) * 0.12);
        const plot = Plot.plot({
          width: 580,
          height: 380,
          marginLeft: 48,
          marginRight: 28,
          marginTop: 22,
          marginBottom: 42,
          style: PLOT_STYLE,
          x: { label: `Average ${kind} tokens per problem →`, zero: true, grid: true, tickFormat: '~s', nice: true },
          y: { label: '↑ Accuracy', grid: true, tickFormat: '.0%', domain: [Math.max(0, Math.min(...ys) - pad), Math.min(1, Math.max(...ys) + pad)], nice: true },
          color: colorScale,
          marks: [
            Plot.ruleX(pts, { x: 'avgTokens', y1: 'accLo', y2: 'accHi', stroke: 'method', strokeOpacity: 0.45, className: 'mark-accuracy-ci' }),
            Plot.ruleY(pts, { y: 'accuracy', x1: 'tokLo', x2: 'tokHi', stroke: 'method', strokeOpacity: 0.45, className: 'mark-tokens-ci' }),
            Plot.line(front, { x: 'avgTokens', y: 'accuracy', curve: 'step-after', stroke: '#2b2f36', strokeWidth: 1.4, strokeDasharray: '5 4', className: 'mark-pareto-frontier' }),
            Plot.dot(base, { x: 'avgTokens', y: 'accuracy', symbol: 'star', r: 7, fill: '#2b2f36', className: 'mark-full-rollout' }),
            Plot.text(base, { x: 'avgTokens', y: 'accuracy', text: () => 'full rollout', dx: 9, textAnchor: 'start', fill: '#2b2f36', className: 'mark-full-rollout-label' }),
            Plot.dot(front, { x: 'avgTokens', y: 'accuracy', r: 8.5, stroke: 'method', strokeWidth: 1.4, fill: 'none', className: 'mark-pareto-points' }),
            Plot.dot(pts, {
              x: 'avgTokens',
              y: 'accuracy',
              fill: 'method',
              r: 5,
              stroke: 'white',
              strokeWidth: 1,
              className: 'mark-runs',
              title: (p: (typeof pts)[number]) =>
                `${p.label}\naccuracy ${pct(p.accuracy)} [${pct(p.accLo)}, ${pct(p.accHi)}]\navg ${kind} tokens ${int(p.avgTokens)} [${int(p.tokLo)}, ${int(p.tokHi)}]\nn = ${p.n}${p.pareto ? '\non the Pareto frontier' : ''}`,
              tip: true,
            }),
            Plot.text(front, { x: 'avgTokens', y: 'accuracy', text: 'setting', dy: -14, fill: '#2b2f36', stroke: 'white', strokeWidth: 3, paintOrder: 'stroke', className: 'mark-pareto-labels' }),
          ],
        });
        grid.append(figure(b, `${pts.length} run${pts.length === 1 ? '' : 's'} · ${front.length} on the frontier`, plot, { 'data-benchmark': b, 'data-kind': 'pareto', 'data-tokens': kind }));
      }
      };
      drawAll('output');
      kindSelect.addEventListener('change', () => drawAll((kindSelect as HTMLSelectElement).value as 'output' | 'decoded'));
    });
  }

  // ---------- 2. premature-exit rate against delta ----------
  {
    const s = section(
      'delta',
      2,
      'Empirical premature-exit rate against δ',
      'Each point is one calibrated threshold evaluated on held-out data (conformal/) or one evaluation run that carries a δ. A premature exit is an exit whose forced answer is wrong. Conformal calibration promises a rate at or below δ, i.e. on or under the dashed y = δ line (shaded); whiskers are 95% intervals where known.',
    );
    guarded(s, 'the premature-exit plot', () => {
      const pts = data.premature;
      if (pts.length === 0) {
        s.append(
          empty(
            data.hasConformalFolder
              ? 'The conformal/ folder holds no readable calibration results, and no evaluation run carries a δ.'
              : 'No conformal calibration results (there is no conformal/ folder) and no evaluation run carries a δ.',
          ),
        );
        return;
      }
      const series = uniq(pts.map((p) => p.series));
      const seriesColors = series.map((_, i) => PALETTE[(i + 2) % PALETTE.length]!);
      const sColor = { type: 'categorical' as const, domain: series, range: seriesColors };
      const dmax = Math.max(...pts.map((p) => p.delta)) * 1.1;
      const top = Math.max(dmax, ...pts.map((p) => (p.prematureExitRateCi95 ? p.prematureExitRateCi95[1] : p.prematureExitRate))) * 1.05;
      const diag = [{ d: 0 }, { d: dmax }];
      const withCi = pts.filter((p) => p.prematureExitRateCi95);
      const sorted = [...pts].sort((a, b) => a.delta - b.delta);
      s.append(el('div', { class: 'legend-row' }, Plot.legend({ color: sColor, swatchSize: 11, style: PLOT_STYLE }) as Element));
      const grid = el('div', { class: 'grid' });
      s.append(grid);
      const tip = (p: PrematurePoint) =>
        `${p.series}\nδ = ${p.delta}${p.threshold !== null ? `, threshold ${score(p.threshold)}` : ''}\npremature-exit rate ${pct(p.prematureExitRate, 2)}${p.prematureExitRateCi95 ? ` [${pct(p.prematureExitRateCi95[0], 2)}, ${pct(p.prematureExitRateCi95[1], 2)}]` : ''}\nexit rate ${pct(p.exitRate)} · n = ${p.n}`;
      const plot = Plot.plot({
        width: 580,
        height: 380,
        marginLeft: 52,
        marginRight: 28,
        marginTop: 22,
        marginBottom: 42,
        style: PLOT_STYLE,
        x: { label: 'δ (target premature-exit rate) →', domain: [0, dmax], grid: true },
        y: { label: '↑ Empirical premature-exit rate', domain: [0, top], grid: true },
        color: sColor,
        marks: [
          Plot.areaY(diag, { x: 'd', y1: 0, y2: 'd', fill: '#3ca951', fillOpacity: 0.08, className: 'mark-guarantee-region' }),
          Plot.line(diag, { x: 'd', y: 'd', stroke: '#2b2f36', strokeWidth: 1.3, strokeDasharray: '6 4', className: 'mark-y-equals-delta' }),
          Plot.text([{ d: dmax }], { x: 'd', y: 'd', text: () => 'y = δ', textAnchor: 'end', dx: -4, dy: -9, fill: '#2b2f36', className: 'mark-y-equals-delta-label' }),
          Plot.ruleX(withCi, { x: 'delta', y1: (p: PrematurePoint) => p.prematureExitRateCi95![0], y2: (p: PrematurePoint) => p.prematureExitRateCi95![1], stroke: 'series', strokeOpacity: 0.5, className: 'mark-premature-ci' }),
          Plot.line(sorted, { x: 'delta', y: 'prematureExitRate', z: 'series', stroke: 'series', strokeWidth: 1.6, className: 'mark-premature-lines' }),
          Plot.dot(sorted, { x: 'delta', y: 'prematureExitRate', fill: 'series', r: 4.5, stroke: 'white', className: 'mark-premature-points', title: tip, tip: true }),
        ],
      });
      grid.append(figure('Premature-exit rate', 'held-out', plot, { 'data-kind': 'premature' }));
      const withExit = sorted.filter((p) => p.exitRate !== null);
      if (withExit.length) {
        const plot2 = Plot.plot({
          width: 580,
          height: 380,
          marginLeft: 52,
          marginRight: 28,
          marginTop: 22,
          marginBottom: 42,
          style: PLOT_STYLE,
          x: { label: 'δ (target premature-exit rate) →', domain: [0, dmax], grid: true },
          y: { label: '↑ Exit rate', domain: [0, 1], grid: true, tickFormat: '.0%' },
          color: sColor,
          marks: [
            Plot.line(withExit, { x: 'delta', y: 'exitRate', z: 'series', stroke: 'series', strokeWidth: 1.6, className: 'mark-exit-rate-lines' }),
            Plot.dot(withExit, { x: 'delta', y: 'exitRate', fill: 'series', r: 4.5, stroke: 'white', className: 'mark-exit-rate-points', title: tip, tip: true }),
          ],
        });
        grid.append(figure('Exit rate', 'how often the rule exits: the price of a smaller δ', plot2, { 'data-kind': 'exit-rate' }));
      }
      const rows = sorted.map((p) => {
        const okay = p.prematureExitRate <= p.delta;
        return {
          cells: [
            p.source === 'conformal' ? 'conformal' : 'eval run',
            p.series,
            String(p.delta),
            p.threshold === null ? (p.source === 'conformal' ? 'none certified' : '—') : score(p.threshold),
            p.calibrationN === null ? '—' : int(p.calibrationN),
            int(p.n),
            el('span', null, pct(p.prematureExitRate, 2), p.prematureExitRateCi95 ? el('span', { class: 'ci' }, `[${pct(p.prematureExitRateCi95[0], 1)}, ${pct(p.prematureExitRateCi95[1], 1)}]`) : null),
            el('span', { class: okay ? 'ok' : 'bad', title: okay ? 'at or below δ' : 'above δ' }, okay ? '✓' : '✗'),
            pct(p.exitRate),
            p.file ?? '',
          ],
        };
      });
      s.append(
        el('div', { style: 'margin-top:14px' }),
        sortableTable(
          [
            { label: 'Source', key: (i) => sorted[i]!.source },
            { label: 'Rule / run', key: (i) => sorted[i]!.series },
            { label: 'δ', num: true, key: (i) => sorted[i]!.delta },
            { label: 'Threshold', num: true, key: (i) => sorted[i]!.threshold ?? -1 },
            { label: 'Calib. n', num: true, key: (i) => sorted[i]!.calibrationN ?? -1 },
            { label: 'Held-out n', num: true, key: (i) => sorted[i]!.n },
            { label: 'Premature rate', num: true, key: (i) => sorted[i]!.prematureExitRate },
            { label: '≤ δ', title: 'empirical premature-exit rate at or below δ' },
            { label: 'Exit rate', num: true, key: (i) => sorted[i]!.exitRate ?? -1 },
            { label: 'File' },
          ],
          rows,
        ),
      );
    });
  }

  // ---------- 3. token savings ----------
  {
    const s = section(
      'savings',
      3,
      'Token savings against the full rollout',
      'Share of the full rollout’s tokens that each run did not spend: 1 − (average tokens) / (average tokens of the full rollout). Negative bars spent more than the full rollout.',
    );
    guarded(s, 'the savings plots', () => {
      if (nRuns === 0) {
        s.append(empty('No evaluation runs.'));
        return;
      }
      const grid = el('div', { class: 'grid' });
      s.append(grid);
      for (const b of data.benchmarks) {
        const rows = byBenchmark(b)
          .filter((r) => !r.isReference && r.metrics.savingsRate !== null)
          .map((r) => ({ label: r.label, method: r.method, savingsRate: r.metrics.savingsRate!, avgTokens: r.metrics.avgTokens }));
        if (rows.length === 0) {
          grid.append(
            figure(b, null, empty(`No run in ${b} has a full-rollout reference: metrics need baselineAvgTokens or savingsRate, predictions need baseline tokens, or add a run with method "full".`), { 'data-benchmark': b, 'data-kind': 'savings' }),
          );
          continue;
        }
        const lo = Math.min(0, ...rows.map((r) => r.savingsRate));
        const hi = Math.max(0, ...rows.map((r) => r.savingsRate));
        const longest = Math.max(...rows.map((r) => r.label.length));
        const plot = Plot.plot({
          width: 580,
          height: 56 + rows.length * 26,
          marginLeft: Math.min(300, 16 + longest * 6.4),
          marginRight: 50,
          marginTop: 10,
          marginBottom: 38,
          style: PLOT_STYLE,
          x: { label: 'Tokens saved vs. full rollout →', domain: [lo, hi === lo ? 1 : hi], nice: true, grid: true, tickFormat: '.0%' },
          y: { label: null, domain: rows.map((r) => r.label) },
          color: colorScale,
          marks: [
            Plot.barX(rows, { x: 'savingsRate', y: 'label', fill: 'method', insetTop: 4, insetBottom: 4, className: 'mark-savings-bars', title: (r: (typeof rows)[number]) => `${r.label}\nsaved ${pct(r.savingsRate)} · ${int(r.avgTokens)} tokens per problem`, tip: true }),
            Plot.ruleX([0], { stroke: '#2b2f36', className: 'mark-zero' }),
            Plot.text(rows.filter((r) => r.savingsRate >= 0), { x: 'savingsRate', y: 'label', text: (r: (typeof rows)[number]) => pct(r.savingsRate), textAnchor: 'start', dx: 5, fill: '#2b2f36', className: 'mark-savings-labels' }),
            Plot.text(rows.filter((r) => r.savingsRate < 0), { x: 'savingsRate', y: 'label', text: (r: (typeof rows)[number]) => pct(r.savingsRate), textAnchor: 'end', dx: -5, fill: '#2b2f36', className: 'mark-savings-labels-negative' }),
          ],
        });
        grid.append(figure(b, `${rows.length} run${rows.length === 1 ? '' : 's'}`, plot, { 'data-benchmark': b, 'data-kind': 'savings' }));
      }
    });
  }

  // ---------- 4. summary table ----------
  {
    const s = section('summary', 4, 'Summary', 'Accuracy with its 95% interval, Δ against the full rollout in percentage points, average tokens with their 95% interval, savings against the full rollout, how often the run exited early, how often an exit was premature, and wall time. ◆ = on the Pareto frontier; bold = best accuracy of its benchmark. Click a column to sort.');
    guarded(s, 'the summary table', () => {
      if (nRuns === 0) {
        s.append(empty('No evaluation runs.'));
        return;
      }
      const runs = data.runs;
      const best = new Map<string, number>();
      for (const r of runs) best.set(r.benchmark, Math.max(best.get(r.benchmark) ?? -1, r.metrics.accuracy));
      const refAcc = (r: ReportRun): number | null => {
        const ref = runs.find((x) => x.benchmark === r.benchmark && x.isReference);
        if (ref) return r === ref ? null : ref.metrics.accuracy;
        return r.metrics.baselineAccuracy;
      };
      const csv: string[][] = [['benchmark', 'method', 'setting', 'n', 'accuracy', 'accuracy_lo', 'accuracy_hi', 'avg_tokens', 'avg_tokens_lo', 'avg_tokens_hi', 'savings_rate', 'exit_rate', 'premature_exit_rate', 'wall_sec', 'pareto']];
      const rows = runs.map((r, i) => {
        const m = r.metrics;
        const d = refAcc(r);
        csv.push([r.benchmark, r.method, r.setting, String(m.n), String(m.accuracy), String(m.accuracyCi95[0]), String(m.accuracyCi95[1]), String(m.avgTokens), String(m.avgTokensCi95[0]), String(m.avgTokensCi95[1]), String(m.savingsRate ?? ''), String(m.exitRate ?? ''), String(m.prematureExitRate ?? ''), String(m.wallSec), String(r.pareto)]);
        return {
          cls: i > 0 && runs[i - 1]!.benchmark !== r.benchmark ? 'group-start' : '',
          attrs: { 'data-run': r.key },
          cells: [
            r.benchmark,
            methodCell(r.method),
            el('span', null, r.setting, r.pareto ? el('span', { class: 'pareto-mark', title: 'on the Pareto frontier' }, '◆') : null),
            int(m.n),
            el('span', null, el('span', m.accuracy === best.get(r.benchmark) ? { class: 'best' } : null, pct(m.accuracy)), el('span', { class: 'ci' }, `${pct(m.accuracyCi95[0])}–${pct(m.accuracyCi95[1])}`)),
            d === null ? '—' : el('span', { class: m.accuracy - d >= 0 ? 'ok' : 'bad' }, pp(m.accuracy - d)),
            el('span', null, int(m.avgTokens), el('span', { class: 'ci' }, `${int(m.avgTokensCi95[0])}–${int(m.avgTokensCi95[1])}`)),
            r.isReference ? el('span', { class: 'muted' }, 'reference') : m.savingsRate === null ? '—' : el('span', { title: `from ${m.savingsSource ?? ''}` }, pct(m.savingsRate)),
            pct(m.exitRate),
            pct(m.prematureExitRate),
            secs(m.wallSec),
          ],
        };
      });
      const button = el('button', { type: 'button', title: 'download this table as CSV' }, 'Download CSV');
      button.addEventListener('click', () => {
        const text = csv.map((row) => row.map((c) => (/[",\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(',')).join('\n') + '\n';
        const a = el('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/csv' })), download: `${data.rootName}-summary.csv` });
        document.body.append(a);
        a.click();
        a.remove();
      });
      s.append(el('div', { class: 'toolbar' }, button));
      s.append(
        sortableTable(
          [
            { label: 'Benchmark', key: (i) => runs[i]!.benchmark },
            { label: 'Method', key: (i) => runs[i]!.method },
            { label: 'Setting', key: (i) => data.settings.indexOf(runs[i]!.setting) },
            { label: 'n', num: true, key: (i) => runs[i]!.metrics.n },
            { label: 'Accuracy [95% CI]', num: true, key: (i) => runs[i]!.metrics.accuracy },
            { label: 'Δ vs full', num: true, title: 'accuracy minus the full rollout’s, percentage points', key: (i) => { const d = refAcc(runs[i]!); return d === null ? -9 : runs[i]!.metrics.accuracy - d; } },
            { label: 'Avg tokens [95% CI]', num: true, key: (i) => runs[i]!.metrics.avgTokens },
            { label: 'Saved', num: true, key: (i) => runs[i]!.metrics.savingsRate ?? -9 },
            { label: 'Exit rate', num: true, key: (i) => runs[i]!.metrics.exitRate ?? -1 },
            { label: 'Premature', num: true, title: 'share of problems whose exit was premature (the exit’s forced answer was wrong)', key: (i) => runs[i]!.metrics.prematureExitRate ?? -1 },
            { label: 'Wall time', num: true, key: (i) => runs[i]!.metrics.wallSec },
          ],
          rows,
        ),
      );
    });
  }

  // ---------- 5. trace viewer ----------
  {
    const s = section(
      'traces',
      5,
      'Trace viewer',
      'Pick a run and a problem to read its reasoning. Cue events are highlighted where they occur, with their probe score; green = forcing an exit there gave a correct answer (label 1), red = a wrong one (label 0), amber = unlabelled. The exit point is marked and the text after it, which the exit did not have to generate, is greyed.',
    );
    guarded(s, 'the trace viewer', () => {
      const runs = data.runs.map((r, i) => ({ r, i })).filter(({ r }) => r.problems.length > 0);
      if (runs.length === 0) {
        s.append(empty('No run has predictions to show.'));
        return;
      }
      const runSel = el('select', { id: 'trace-run', 'aria-label': 'run' });
      for (const b of data.benchmarks) {
        const group = el('optgroup', { label: b });
        for (const { r, i } of runs.filter(({ r }) => r.benchmark === b)) group.append(el('option', { value: String(i) }, `${r.benchmark} · ${r.label} (${r.problems.length} problems)`));
        if (group.children.length) runSel.append(group);
      }
      const filterSel = el('select', { id: 'trace-filter', 'aria-label': 'filter' });
      const FILTERS: [string, string, (p: ReportProblem) => boolean][] = [
        ['all', 'all problems', () => true],
        ['correct', 'correct', (p) => p.correct],
        ['wrong', 'wrong', (p) => !p.correct],
        ['exited', 'exited early', (p) => p.exit !== null],
        ['completed', 'ran to the end', (p) => p.exit === null],
        ['premature', 'premature exit', (p) => p.exit !== null && isPremature(p)],
        ['text', 'with reasoning text', (p) => p.textId !== null],
      ];
      for (const [v, t] of FILTERS) filterSel.append(el('option', { value: v }, t));
      const probSel = el('select', { id: 'trace-problem', 'aria-label': 'problem' });
      const prev = el('button', { type: 'button', id: 'trace-prev', title: 'previous problem' }, '← Prev');
      const next = el('button', { type: 'button', id: 'trace-next', title: 'next problem' }, 'Next →');
      const body = el('div', { id: 'trace-body' });
      s.append(
        el(
          'div',
          { class: 'controls' },
          el('label', null, 'Run', runSel),
          el('label', null, 'Show', filterSel),
          el('label', null, 'Problem', probSel),
          el('div', { class: 'nav' }, prev, next),
        ),
        body,
      );

      function isPremature(p: ReportProblem): boolean {
        if (!p.exit) return false;
        const ev = p.events.find((e) => e.index === p.exit!.event);
        if (ev && ev.label !== null) return ev.label === 0;
        return !p.correct;
      }
      function currentRun(): ReportRun {
        return data.runs[Number(runSel.value)]!;
      }
      function fillProblems(keep?: number) {
        const run = currentRun();
        const f = FILTERS.find(([v]) => v === filterSel.value)![2];
        probSel.replaceChildren();
        run.problems.forEach((p, i) => {
          if (!f(p)) return;
          const tags = [p.correct ? '✓' : '✗', p.exit ? 'exit' : '', p.textId === null ? '(no text)' : ''].filter(Boolean).join(' ');
          probSel.append(el('option', { value: String(i) }, `${p.id}  ${tags}  · ${int(p.tokens.total)} tok`));
        });
        if (probSel.options.length === 0) {
          probSel.append(el('option', { value: '' }, 'no problem matches'));
          probSel.disabled = true;
        } else {
          probSel.disabled = false;
          if (keep !== undefined && [...probSel.options].some((o) => o.value === String(keep))) probSel.value = String(keep);
        }
        show();
      }
      function step(d: number) {
        const i = probSel.selectedIndex + d;
        if (i >= 0 && i < probSel.options.length) {
          probSel.selectedIndex = i;
          show();
        }
      }
      function chip(k: string, v: Child, cls = ''): HTMLElement {
        return el('div', { class: `chip ${cls}` }, el('span', { class: 'k' }, k), el('span', { class: 'v' }, v));
      }
      function eventTitle(e: ReportEvent): string {
        return [
          `event #${e.index}${e.synthetic ? ' (synthetic)' : ''}`,
          `cue “${e.cue}” at token ${e.position}`,
          `probe score ${score(e.score)}`,
          `label ${e.label === null ? '—' : e.label === 1 ? '1 (ready: forced answer correct)' : '0 (not ready: forced answer wrong)'}`,
          e.exitAnswer !== null ? `forced-exit answer: ${e.exitAnswer}` : '',
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

      function renderText(p: ReportProblem, run: ReportRun): HTMLElement {
        const box = el('div', { class: 'trace-text', id: 'trace-text' });
        const text = data.texts[p.textId!]!;
        const exitEv = p.exit ? p.events.find((e) => e.index === p.exit!.event) ?? null : null;
        let target: HTMLElement = box;
        let cursor = 0;
        const saved = p.baseline ? p.baseline.tokens - p.tokens.total : null;
        for (const e of p.events) {
          const off = Math.max(cursor, Math.min(text.length, Math.max(0, e.charOffset)));
          const [a, b] = eventSpan(text, off);
          if (a > cursor) target.append(text.slice(cursor, a));
          const isExit = e === exitEv;
          if (isExit) {
            box.append(el('span', { class: 'exit-flag', id: 'exit-flag', title: `exit at event #${e.index}, token ${e.position}` }, `EXIT${saved !== null && saved > 0 ? ` · ${int(saved)} tokens saved` : ''}`));
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
        if (p.textCut > 0) target.append(el('span', { class: 'cut' }, `\n[… ${int(p.textCut)} more characters not embedded in this report]`));
        if (p.exit && !exitEv) box.prepend(el('div', { class: 'cut' }, `The exit (event #${p.exit.event}, token ${p.exit.position}) is not among the recorded events, so it cannot be placed in the text.\n`));
        if (p.exit && exitEv && cursor >= text.length && text.length - exitEv.charOffset < 3 && !run.isReference) {
          target.append(el('span', { class: 'cut' }, '(the recorded trace ends at the exit)'));
        }
        return box;
      }

      function renderScores(p: ReportProblem, run: ReportRun): Element | null {
        const evs = p.events.filter((e) => e.score !== null);
        if (evs.length === 0) return null;
        const lab = (e: ReportEvent) => (e.label === 1 ? 'ready (label 1)' : e.label === 0 ? 'not ready (label 0)' : 'unlabelled');
        const exitEv = p.exit ? evs.filter((e) => e.index === p.exit!.event) : [];
        const thr = run.threshold !== null ? [run.threshold] : [];
        const xmax = Math.max(p.tokens.total, p.baseline?.tokens ?? 0, ...evs.map((e) => e.position)) || 1;
        const savedRegion = exitEv.length && p.baseline && p.baseline.tokens > exitEv[0]!.position ? [{ x1: exitEv[0]!.position, x2: p.baseline.tokens }] : [];
        return Plot.plot({
          width: 1120,
          height: 200,
          marginLeft: 48,
          marginRight: 120,
          marginTop: 24,
          marginBottom: 36,
          style: PLOT_STYLE,
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

      function renderEvents(p: ReportProblem): HTMLElement {
        const exitIdx = p.exit ? p.exit.event : -1;
        const rows = p.events.map((e) => ({
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
              { label: '#', num: true, key: (i) => p.events[i]!.index },
              { label: 'Token', num: true, key: (i) => p.events[i]!.position },
              { label: 'Char', num: true, key: (i) => p.events[i]!.charOffset },
              { label: 'Cue', key: (i) => p.events[i]!.cue },
              { label: 'Probe score', num: true, key: (i) => p.events[i]!.score ?? -1 },
              { label: 'Label', key: (i) => p.events[i]!.label ?? -1 },
              { label: 'Forced-exit answer' },
            ],
            rows,
          ),
        );
        wrap.addEventListener('click', (ev) => {
          const tr = (ev.target as Element).closest('tr[data-event]');
          if (!tr) return;
          const mark = body.querySelector(`mark[data-event="${tr.getAttribute('data-event')}"]`);
          if (!mark) return;
          mark.scrollIntoView({ block: 'center', behavior: 'smooth' });
          mark.classList.remove('flash');
          void (mark as HTMLElement).offsetWidth;
          mark.classList.add('flash');
        });
        return wrap;
      }

      function show() {
        body.replaceChildren();
        prev.disabled = probSel.disabled || probSel.selectedIndex <= 0;
        next.disabled = probSel.disabled || probSel.selectedIndex >= probSel.options.length - 1;
        if (probSel.disabled) {
          body.append(empty('No problem of this run matches the filter.'));
          return;
        }
        const run = currentRun();
        const p = run.problems[Number(probSel.value)]!;
        body.setAttribute('data-problem', p.id);
        const chips = el('div', { class: 'chips' });
        chips.append(el('div', { class: `chip ${p.correct ? 'ok' : 'bad'}`, id: 'trace-verdict' }, p.correct ? '✓ correct' : '✗ wrong'));
        chips.append(chip('gold', p.gold), chip('extracted', p.extracted ?? '(none)', p.correct ? 'ok' : 'bad'));
        chips.append(chip('tokens', `${int(p.tokens.total)} = ${int(p.tokens.reasoning)} reasoning + ${int(p.tokens.exitCue)} cue + ${int(p.tokens.answer)} answer`));
        if (p.baseline) {
          chips.append(chip('full rollout', `${int(p.baseline.tokens)} tok · ${p.baseline.correct ? '✓' : '✗'} ${p.baseline.extracted ?? '(none)'}`));
          const sv = p.baseline.tokens - p.tokens.total;
          chips.append(chip('saved', `${int(sv)} tok (${pct(p.baseline.tokens > 0 ? sv / p.baseline.tokens : null)})`));
        }
        chips.append(
          p.exit
            ? chip('exit', `event #${p.exit.event} at token ${int(p.exit.position)}${p.exit.cue ? ` (“${p.exit.cue}”)` : ''}${p.exit.score !== null ? `, score ${score(p.exit.score)}` : ''}${isPremature(p) ? ' · premature' : ''}`, isPremature(p) ? 'bad' : '')
            : chip('exit', 'none: ran to the end'),
        );
        chips.append(chip('events', String(p.events.length)), chip('wall', secs(p.wallMs / 1000)));
        body.append(chips);
        const prob = el('details', { class: 'problem', open: '' }, el('summary', null, 'Problem'), el('div', { class: 'body' }, p.problem));
        body.append(prob);
        const plot = renderScores(p, run);
        if (plot) body.append(figure('Probe score at each cue event', run.threshold !== null ? 'dashed: the run’s threshold' : null, plot, { 'data-kind': 'scores' }));
        if (p.textId === null) {
          body.append(
            empty(
              p.textOmitted === 'limit'
                ? 'The reasoning text of this problem was not embedded: the report keeps a limited number of traces per run (lynx report --max-traces).'
                : 'This run recorded no reasoning text for this problem.',
            ),
          );
        } else {
          const sample = (cls: string, t: string) => el('span', null, el('span', { class: `sample ${cls}` }, t));
          body.append(
            el(
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
            ),
          );
          body.append(renderText(p, run));
        }
        if (p.events.length) body.append(el('div', { style: 'margin-top:12px' }), renderEvents(p));
      }

      runSel.addEventListener('change', () => fillProblems());
      filterSel.addEventListener('change', () => fillProblems(Number(probSel.value)));
      probSel.addEventListener('change', show);
      prev.addEventListener('click', () => step(-1));
      next.addEventListener('click', () => step(1));

      // Open on an informative trace: the first run with an early exit and text, at its first such problem.
      let start = runs[0]!;
      let startProblem = 0;
      outer: for (const cand of runs) {
        for (let j = 0; j < cand.r.problems.length; j++) {
          const p = cand.r.problems[j]!;
          if (p.exit && p.textId !== null && p.events.length) {
            start = cand;
            startProblem = j;
            break outer;
          }
        }
      }
      runSel.value = String(start.i);
      fillProblems(startProblem);
    });
  }

  // ---------- notes ----------
  if (data.warnings.length) {
    const s = section('notes', 6, 'Notes', 'Things the report skipped or could not reconcile while reading the experiment folder.');
    s.append(el('ul', { class: 'warnings' }, ...data.warnings.map((w) => el('li', null, w))));
  }
  const d3v = (window as unknown as { d3?: { version?: string } }).d3?.version ?? '?';
  app.append(el('footer', { class: 'page' }, `Generated by lynx report · plots drawn with Observable Plot ${(Plot as unknown as { version?: string }).version ?? ''} and d3 ${d3v}, embedded in this file`));
  document.documentElement.setAttribute('data-lynx-ready', 'true');
}
