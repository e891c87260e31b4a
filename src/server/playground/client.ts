/**
 * The playground's page script: a question in, the reasoning streamed live through the server's own
 * `/v1/chat/completions` (SSE), every cue word LYNX scored highlighted in place with its score and the calibrated
 * threshold, the exit marked where LYNX stopped, the answer, tokens and time; "full vs early exit" runs both with one
 * seed side by side; a finished run opens in the report's trace viewer.
 *
 * Like the report's client/, this runs in the browser serialised with Function.prototype.toString: self-contained,
 * with what it needs (the DOM kit, the trace viewer, the config) as parameters. Model text reaches the DOM only
 * through text nodes.
 */
import type { Dom } from '../../report/client/dom.js';
import type { TraceViewer } from '../../report/client/trace-viewer.js';

export interface PlaygroundConfig {
  model: string;
  /** Calibrated (rule, δ) pairs of the server's probe; empty: no LYNX. */
  rules: { rule: string; delta: number }[];
  /** Problem sets to pick from: name and problems (text only). */
  sets: { name: string; problems: { id: string; text: string; gold: string }[] }[];
  instruction: string;
}

export function playgroundClient(config: PlaygroundConfig, dom: Dom, viewer: TraceViewer): void {
  const { el } = dom;
  const $ = (id: string) => document.getElementById(id)!;

  interface CueEvent {
    index: number;
    position: number;
    char_offset: number;
    cue: string;
    word: string;
    score: number;
    threshold: number | null;
    exit: boolean;
  }
  interface RunState {
    reasoning: string;
    content: string;
    events: CueEvent[];
    exit: Record<string, unknown> | null;
    usage: { completion_tokens: number; completion_tokens_details?: { reasoning_tokens?: number } } | null;
    finish: string | null;
    started: number;
    firstToken: number | null;
    ended: number | null;
    error: string | null;
  }

  // ---- controls
  const key = el('input', { id: 'api-key', type: 'password', placeholder: 'API key (if the server needs one)', autocomplete: 'off' });
  key.value = localStorage.getItem('lynx-api-key') ?? '';
  key.addEventListener('change', () => localStorage.setItem('lynx-api-key', key.value));
  const question = el('textarea', { id: 'question', rows: '4', placeholder: 'Type a problem, or pick one below' });
  const setSelect = el('select', { id: 'problem-set' }, ...config.sets.map((s, i) => el('option', { value: String(i) }, s.name)));
  const problemSelect = el('select', { id: 'problem' });
  const fillProblems = () => {
    const set = config.sets[Number(setSelect.value)];
    problemSelect.replaceChildren(el('option', { value: '' }, '— pick a problem —'), ...(set?.problems ?? []).map((p, i) => el('option', { value: String(i) }, `${p.id}: ${p.text.slice(0, 70)}`)));
  };
  setSelect.addEventListener('change', fillProblems);
  problemSelect.addEventListener('change', () => {
    const p = config.sets[Number(setSelect.value)]?.problems[Number(problemSelect.value)];
    if (p) {
      question.value = p.text;
      goldBox.textContent = `gold answer: ${p.gold}`;
    }
  });
  fillProblems();
  const goldBox = el('span', { id: 'gold', class: 'muted' });
  const rules = [...new Set(config.rules.map((r) => r.rule))];
  const ruleSelect = el('select', { id: 'rule' }, ...rules.map((r) => el('option', { value: r }, r)));
  const deltaSelect = el('select', { id: 'delta' });
  const fillDeltas = () => {
    const ds = config.rules.filter((r) => r.rule === ruleSelect.value).map((r) => r.delta);
    deltaSelect.replaceChildren(...ds.map((d) => el('option', { value: String(d) }, `δ = ${d}`)));
    if (ds.includes(0.1)) deltaSelect.value = '0.1';
  };
  ruleSelect.addEventListener('change', fillDeltas);
  fillDeltas();
  const seed = el('input', { id: 'seed', type: 'number', value: '0', min: '0' });
  const maxTokens = el('input', { id: 'max-tokens', type: 'number', value: '600', min: '16' });
  const temperature = el('input', { id: 'temperature', type: 'number', value: '0.6', min: '0', max: '2', step: '0.1' });
  const addInstruction = el('input', { id: 'instruction', type: 'checkbox' });
  addInstruction.checked = true;
  const runButton = el('button', { id: 'run', type: 'button' }, 'Run with early exit');
  const compareButton = el('button', { id: 'compare', type: 'button' }, 'Full vs early exit');
  const lynx = config.rules.length > 0;
  if (!lynx) {
    runButton.textContent = 'Run';
    compareButton.disabled = true;
    compareButton.title = 'the server has no probe (start it with --probe)';
  }
  const field = (label: string, control: HTMLElement, wide = false) => el('label', { class: wide ? 'field wide' : 'field' }, el('span', null, label), control);

  const panes = el('div', { id: 'panes', class: 'panes' });
  const summary = el('div', { id: 'compare-summary', class: 'compare-summary' });
  const traceBox = el('div', { id: 'trace-viewer-box' });

  $('app').append(
    el('header', { class: 'pg-header' }, el('h1', null, 'Lynx playground'), el('span', { class: 'muted' }, `model ${config.model}`), key),
    el(
      'section',
      { class: 'card controls' },
      question,
      el('div', { class: 'row' }, field('problem set', setSelect), field('problem', problemSelect, true), goldBox),
      el(
        'div',
        { class: 'row' },
        lynx ? field('rule', ruleSelect) : null,
        lynx ? field('error level', deltaSelect) : null,
        field('seed', seed),
        field('max tokens', maxTokens),
        field('temperature', temperature),
        el('label', { class: 'field check' }, addInstruction, el('span', null, "add LYNX's instruction")),
      ),
      el('div', { class: 'row' }, runButton, compareButton),
    ),
    summary,
    panes,
    traceBox,
  );

  // ---- one streamed run
  function body(earlyExit: Record<string, unknown>) {
    const text = question.value.trim() + (addInstruction.checked ? `\n${config.instruction}` : '');
    return {
      model: config.model,
      messages: [{ role: 'user', content: text }],
      stream: true,
      stream_options: { include_usage: true },
      seed: Number(seed.value),
      max_tokens: Number(maxTokens.value),
      temperature: Number(temperature.value),
      early_exit: earlyExit,
    };
  }

  async function stream(request: Record<string, unknown>, state: RunState, redraw: () => void): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (key.value) headers.authorization = `Bearer ${key.value}`;
    const res = await fetch('/v1/chat/completions', { method: 'POST', headers, body: JSON.stringify(request) });
    if (!res.ok || !res.body) {
      const j = await res.json().catch(() => null);
      state.error = (j && j.error && j.error.message) || `HTTP ${res.status}`;
      state.ended = performance.now();
      redraw();
      return;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of event.split('\n')) {
          if (!line.startsWith('data: ')) continue;
          const data = line.slice(6);
          if (data === '[DONE]') continue;
          const chunk = JSON.parse(data);
          if (chunk.error) state.error = chunk.error.message;
          if (chunk.cue_event) state.events.push(chunk.cue_event);
          if (chunk.usage) state.usage = chunk.usage;
          if (chunk.early_exit) state.exit = chunk.early_exit;
          const c = chunk.choices && chunk.choices[0];
          if (c) {
            if (c.delta && c.delta.reasoning_content) state.reasoning += c.delta.reasoning_content;
            if (c.delta && c.delta.content) state.content += c.delta.content;
            if ((c.delta && (c.delta.reasoning_content || c.delta.content)) && state.firstToken === null) state.firstToken = performance.now();
            if (c.finish_reason) state.finish = c.finish_reason;
          }
        }
      }
      redraw();
    }
    state.ended = performance.now();
    redraw();
  }

  const fresh = (): RunState => ({ reasoning: '', content: '', events: [], exit: null, usage: null, finish: null, started: performance.now(), firstToken: null, ended: null, error: null });

  /** The reasoning with every scored cue word marked in place, and the exit flag where the run stopped. */
  function reasoningView(state: RunState): HTMLElement {
    const box = el('div', { class: 'pg-text' });
    let at = 0;
    const events = [...state.events].sort((a, b) => a.char_offset - b.char_offset);
    for (const e of events) {
      if (e.char_offset < at || e.char_offset > state.reasoning.length) continue;
      box.append(state.reasoning.slice(at, e.char_offset));
      const end = Math.min(state.reasoning.length, e.char_offset + e.word.length);
      // An exit cuts the trace before its cue word: the word was decoded and scored, but it is not in the trace.
      const cut = end === e.char_offset;
      const shown = cut ? e.word : state.reasoning.slice(e.char_offset, end);
      const mark = el(
        'mark',
        { class: `cue${e.exit ? ' cue-exit' : ''}${cut ? ' cue-cut' : ''}`, 'data-score': e.score.toFixed(3), title: `cue “${e.cue}” at token ${e.position}: score ${e.score.toFixed(3)}${e.threshold !== null ? ` (threshold ${e.threshold.toFixed(3)})` : ''}` },
        shown,
        el('sup', { class: 'cue-score' }, e.score.toFixed(2)),
      );
      box.append(mark);
      at = end;
      if (e.exit) {
        box.append(el('span', { class: 'pg-exit' }, `EXIT — LYNX stops here: p ${e.score.toFixed(3)} ≥ ${e.threshold !== null ? e.threshold.toFixed(3) : '?'}`));
        break;
      }
    }
    if (at < state.reasoning.length) box.append(state.reasoning.slice(at));
    return box;
  }

  function answerOf(state: RunState): string | null {
    const m = /\\boxed\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}/.exec(state.content);
    return m ? m[1]!.trim() : null;
  }

  function paneView(title: string, state: RunState): HTMLElement {
    const tokens = state.usage ? state.usage.completion_tokens : null;
    const secs = state.ended !== null ? (state.ended - state.started) / 1000 : (performance.now() - state.started) / 1000;
    const exit = state.exit as { triggered?: boolean; event?: number; score?: number; threshold?: number; position?: number } | null;
    return el(
      'section',
      { class: 'card pane' },
      el('h2', null, title),
      el(
        'div',
        { class: 'stats' },
        el('span', { class: 'tokens' }, tokens === null ? 'tokens: …' : `${tokens} tokens`),
        el('span', null, `${secs.toFixed(1)} s`),
        state.firstToken !== null ? el('span', { class: 'muted' }, `first token ${((state.firstToken - state.started) / 1000).toFixed(2)} s`) : null,
        exit ? el('span', { class: exit.triggered ? 'badge exit' : 'badge' }, exit.triggered ? `exited at cue #${exit.event} after ${exit.position} reasoning tokens` : 'no exit') : null,
        state.finish ? el('span', { class: 'muted' }, `finish: ${state.finish}`) : null,
      ),
      state.error ? el('div', { class: 'error' }, state.error) : null,
      el('h3', null, 'Reasoning'),
      reasoningView(state),
      el('h3', null, 'Answer'),
      el('div', { class: 'answer' }, state.content || (state.ended === null ? '…' : '—')),
    );
  }

  function traceViewOf(state: RunState, fullTokens: number | null) {
    const exitEvent = state.events.find((e) => e.exit);
    return {
      text: state.reasoning,
      events: state.events.map((e) => ({ index: e.index, position: e.position, charOffset: e.char_offset, cue: e.cue, score: e.score })),
      threshold: state.events.length > 0 ? state.events[0]!.threshold : null,
      exit: exitEvent ? { event: exitEvent.index, position: exitEvent.position } : null,
      tokens: state.usage ? state.usage.completion_tokens : 0,
      fullRolloutTokens: fullTokens,
    };
  }

  function openButton(state: RunState, fullTokens: number | null): HTMLElement {
    const b = el('button', { type: 'button', class: 'open-trace' }, 'Open in trace viewer');
    b.addEventListener('click', () => {
      traceBox.replaceChildren(el('section', { class: 'card' }, el('h2', null, 'Trace viewer'), el('div', { id: 'trace-viewer' })));
      viewer.show($('trace-viewer'), traceViewOf(state, fullTokens));
      traceBox.scrollIntoView({ behavior: 'smooth' });
    });
    return b;
  }

  const lynxExit = () => (lynx ? { method: 'lynx', rule: ruleSelect.value, delta: Number(deltaSelect.value) } : { method: 'none' });
  const busy = (on: boolean) => {
    runButton.disabled = on;
    compareButton.disabled = on || !lynx;
    document.documentElement.setAttribute('data-busy', on ? 'true' : 'false');
  };

  runButton.addEventListener('click', async () => {
    if (!question.value.trim()) return;
    busy(true);
    summary.replaceChildren();
    traceBox.replaceChildren();
    const state = fresh();
    const title = lynx ? `Early exit (${ruleSelect.value}, δ ${deltaSelect.value})` : 'Completion';
    const redraw = () => panes.replaceChildren(paneView(title, state));
    await stream(body(lynxExit()), state, redraw);
    if (!state.error) panes.firstElementChild?.append(openButton(state, null));
    busy(false);
  });

  compareButton.addEventListener('click', async () => {
    if (!question.value.trim()) return;
    busy(true);
    summary.replaceChildren();
    traceBox.replaceChildren();
    const full = fresh();
    const early = fresh();
    const redraw = () => panes.replaceChildren(paneView('Full thinking', full), paneView(`Early exit (${ruleSelect.value}, δ ${deltaSelect.value})`, early));
    // Both at once, same seed: the server batches them; their traces agree up to the exit.
    await Promise.all([stream(body({ method: 'none' }), full, redraw), stream(body(lynxExit()), early, redraw)]);
    const ft = full.usage ? full.usage.completion_tokens : null;
    const et = early.usage ? early.usage.completion_tokens : null;
    const a = answerOf(full);
    const b = answerOf(early);
    summary.replaceChildren(
      el(
        'div',
        { class: 'card' },
        el('strong', { id: 'tokens-saved' }, ft !== null && et !== null ? `${ft - et} tokens saved (${ft} → ${et}, ${ft > 0 ? Math.round((100 * (ft - et)) / ft) : 0}%)` : 'tokens: —'),
        ' · ',
        el('span', { id: 'answer-changed' }, a === b ? `same answer (${a ?? '—'})` : `answer changed: ${a ?? '—'} → ${b ?? '—'}`),
      ),
    );
    if (!early.error) panes.lastElementChild?.append(openButton(early, ft));
    busy(false);
  });

  document.documentElement.setAttribute('data-lynx-ready', 'true');
}
