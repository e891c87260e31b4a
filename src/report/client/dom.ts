/**
 * DOM and number helpers shared by every part of the page script.
 *
 * Everything under client/ runs in the browser, serialised with Function.prototype.toString (see ../scripts.ts):
 * each exported function must be self-contained, with no reference to anything outside its own body but its
 * parameters and the browser's globals. Imports are for types only; what one part needs from another comes in
 * as a parameter (a "kit" like the one this function returns).
 *
 * Model text only ever reaches the DOM through text nodes and attribute setters, never innerHTML.
 */

/** What `el` accepts as children: nodes, text, numbers; null, undefined and false are skipped. */
export type Child = Node | string | number | null | undefined | false;

/** A column of `sortableTable`; columns with a `key` sort on a click on their header. */
export interface TableColumn {
  label: string;
  num?: boolean;
  title?: string;
  key?: (row: number) => number | string;
}

export interface TableRow {
  cells: (Node | string)[];
  cls?: string;
  attrs?: Record<string, string>;
}

export function domKit() {
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
  /** The style of every plot on the page. */
  const plotStyle = { fontSize: '11px', fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif', overflow: 'visible' };

  function empty(msg: string): HTMLElement {
    return el('div', { class: 'empty' }, msg);
  }
  /** Run `f`; when it throws, say so inside `target` (and on the console) instead of breaking the rest of the page. */
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
  /** A key/value box, as in the trace viewer's summary line. */
  function chip(k: string, v: Child, cls = ''): HTMLElement {
    return el('div', { class: `chip ${cls}` }, el('span', { class: 'k' }, k), el('span', { class: 'v' }, v));
  }
  /** A table whose columns with a key sort on a click (again: the other way); `group-start` rows keep their rule only unsorted. */
  function sortableTable(columns: TableColumn[], rows: TableRow[]): HTMLElement {
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

  return { el, int, pct, pp, score, secs, natural, uniq, plotStyle, empty, guarded, figure, chip, sortableTable };
}

/** The helpers `domKit` returns, as every part of the page script receives them. */
export type Dom = ReturnType<typeof domKit>;
