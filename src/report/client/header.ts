/** The page header: title, what the experiment holds, and the table of contents. Browser code (see dom.ts). */
import type { ReportPage } from './page.js';

export function headerSection(page: ReportPage): void {
  const { data, app } = page;
  const { el } = page.dom;
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
}
