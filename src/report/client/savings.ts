/** Section 3: token savings against the full rollout, one bar per run and benchmark. Browser code (see dom.ts). */
import type { ReportPage } from './page.js';

export function savingsSection(page: ReportPage): void {
  const { data, Plot, colorScale } = page;
  const { el, int, pct, empty, guarded, figure, plotStyle } = page.dom;
  const s = page.section(
    'savings',
    3,
    'Token savings against the full rollout',
    'Share of the full rollout’s tokens that each run did not spend: 1 − (average tokens) / (average tokens of the full rollout). Negative bars spent more than the full rollout.',
  );
  guarded(s, 'the savings plots', () => {
    if (data.runs.length === 0) {
      s.append(empty('No evaluation runs.'));
      return;
    }
    const grid = el('div', { class: 'grid' });
    s.append(grid);
    for (const b of data.benchmarks) {
      const rows = page
        .runsOf(b)
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
        style: plotStyle,
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
