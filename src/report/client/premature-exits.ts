/**
 * Section 2: the empirical premature-exit rate against δ (conformal results and evaluation runs with a δ), the
 * y = δ line, the exit rate against δ, and a table of every point. Browser code (see dom.ts).
 */
import type { PrematurePoint } from '../model.js';
import type { ReportPage } from './page.js';

export function prematureExitSection(page: ReportPage): void {
  const { data, Plot, palette } = page;
  const { el, int, pct, score, uniq, empty, guarded, figure, sortableTable, plotStyle } = page.dom;
  const s = page.section(
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
    const seriesColors = series.map((_, i) => palette[(i + 2) % palette.length]!);
    const sColor = { type: 'categorical' as const, domain: series, range: seriesColors };
    const dmax = Math.max(...pts.map((p) => p.delta)) * 1.1;
    const top = Math.max(dmax, ...pts.map((p) => (p.prematureExitRateCi95 ? p.prematureExitRateCi95[1] : p.prematureExitRate))) * 1.05;
    const diag = [{ d: 0 }, { d: dmax }];
    const withCi = pts.filter((p) => p.prematureExitRateCi95);
    const sorted = [...pts].sort((a, b) => a.delta - b.delta);
    s.append(el('div', { class: 'legend-row' }, Plot.legend({ color: sColor, swatchSize: 11, style: plotStyle }) as Element));
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
      style: plotStyle,
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
        style: plotStyle,
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
