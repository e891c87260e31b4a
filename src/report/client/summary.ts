/** Section 4: the summary table of every run, sortable, downloadable as CSV. Browser code (see dom.ts). */
import type { ReportRun } from '../model.js';
import type { ReportPage } from './page.js';

export function summarySection(page: ReportPage): void {
  const { data } = page;
  const { el, int, pct, pp, secs, empty, guarded, sortableTable } = page.dom;
  const s = page.section('summary', 4, 'Summary', 'Accuracy with its 95% interval, Δ against the full rollout in percentage points, average tokens with their 95% interval, savings against the full rollout, how often the run exited early, how often an exit was premature, and wall time. ◆ = on the Pareto frontier; bold = best accuracy of its benchmark. Click a column to sort.');
  guarded(s, 'the summary table', () => {
    if (data.runs.length === 0) {
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
          page.methodCell(r.method),
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
