/** Section 1: accuracy against average tokens per benchmark, with the Pareto frontier. Browser code (see dom.ts). */
import type { ReportPage } from './page.js';

export function paretoSection(page: ReportPage): void {
  const { data, Plot, colorScale } = page;
  const { el, int, pct, empty, guarded, figure, plotStyle } = page.dom;
  const s = page.section(
    'pareto',
    1,
    'Accuracy against average tokens',
    'One point per run (method and setting); whiskers are 95% intervals of accuracy and of average tokens, output tokens (the response a user reads) or decoded tokens (every token sampled: probes, trials, extra traces, forced exits) as the switch says. The dashed step line is the Pareto frontier, the best accuracy reached within a token budget; ringed points are on it and are labelled with their setting. ★ marks the full rollout when the runs report it.',
  );
  guarded(s, 'the accuracy/token plots', () => {
    if (data.runs.length === 0) {
      s.append(empty('No evaluation runs were found under eval/<benchmark>/<method>/<setting>/.'));
      return;
    }
    s.append(el('div', { class: 'legend-row' }, Plot.legend({ color: colorScale, swatchSize: 11, style: plotStyle }) as Element));
    // Output tokens (what the user reads) or decoded tokens (all the work); the data model computes both frontiers.
    const kinds = data.tokenKinds;
    const kindSelect = el(
      'select',
      { id: 'pareto-token-kind', 'aria-label': 'token count on the x axis' },
      ...kinds.map((k) => el('option', { value: k }, k === 'output' ? 'output tokens' : 'decoded tokens')),
    );
    if (kinds.length > 1) s.append(el('p', { class: 'controls' }, 'x axis: ', kindSelect));
    const grid = el('div', { class: 'grid' });
    s.append(grid);
    const drawAll = (kind: 'output' | 'decoded') => {
    grid.replaceChildren();
    for (const b of data.benchmarks) {
      const pts = page.runsOf(b).filter((r) => r.axes[kind] !== null).map((r) => ({
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
        style: plotStyle,
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
