/**
 * Section 5: pick a run and a problem (with filters) and read it: the answer against gold, the token accounting,
 * the full rollout and the saving, the problem, and the trace itself through the trace viewer (trace-viewer.ts).
 * Browser code (see dom.ts).
 */
import type { ReportData, ReportProblem, ReportRun } from '../model.js';
import type { ReportPage } from './page.js';
import type { TraceView } from './trace-viewer.js';

export function tracesSection(page: ReportPage): void {
  const { data, traceViewer } = page;
  const { el, int, pct, score, secs, empty, guarded, chip } = page.dom;
  const s = page.section(
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

    /** The same rule as isPrematureExit in model.ts: the exit event's label, else the answer. */
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
      body.append(el('details', { class: 'problem', open: '' }, el('summary', null, 'Problem'), el('div', { class: 'body' }, p.problem)));
      body.append(traceViewer.render(traceViewOf(data, run, p), { ids: { text: 'trace-text', exitFlag: 'exit-flag' } }));
    }

    /** A problem of a run as the trace viewer's input. */
    function traceViewOf(d: ReportData, run: ReportRun, p: ReportProblem): TraceView {
      return {
        text: p.textId === null ? null : d.texts[p.textId]!,
        textMissing:
          p.textOmitted === 'limit'
            ? 'The reasoning text of this problem was not embedded: the report keeps a limited number of traces per run (lynx report --max-traces).'
            : 'This run recorded no reasoning text for this problem.',
        textCut: p.textCut,
        events: p.events,
        threshold: run.threshold,
        exit: p.exit,
        tokens: p.tokens.total,
        fullRolloutTokens: p.baseline ? p.baseline.tokens : null,
        reference: run.isReference,
      };
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
