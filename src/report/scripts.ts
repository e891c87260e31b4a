/**
 * The page scripts, made from the browser functions under client/ with Function.prototype.toString.
 *
 * Why toString and not a bundler: the functions serialised are the very ones Node loaded, so the page is the same
 * from src/ under tsx or vitest and from the compiled dist/, with no build step, no file lookup and no bundler
 * (esbuild is a native binary) among the package's dependencies. The price is a rule for client/: every exported
 * function is self-contained and gets what it needs from another part as a parameter (`Dom`, `TraceViewer`,
 * `ReportPage`); `source` below refuses a function that reaches an import, and the browser tests run every part.
 */
import { domKit } from './client/dom.js';
import { headerSection } from './client/header.js';
import { notesSection } from './client/notes.js';
import { reportPage, type ReportSection } from './client/page.js';
import { paretoSection } from './client/pareto.js';
import { prematureExitSection } from './client/premature-exits.js';
import { savingsSection } from './client/savings.js';
import { summarySection } from './client/summary.js';
import { tracesSection } from './client/traces.js';
import { traceViewer } from './client/trace-viewer.js';

/** The report's sections, in page order. */
export const REPORT_SECTIONS: readonly ReportSection[] = [
  headerSection,
  paretoSection,
  prematureExitSection,
  savingsSection,
  summarySection,
  tracesSection,
  notesSection,
];

/**
 * Source text of a client function. A reference to an imported binding would be a free name in the page (and is
 * rewritten to `__vite_ssr_import_N__.name` by vitest), so it is refused here with the function's name.
 */
export function clientSource(fn: (...args: never[]) => unknown): string {
  const text = fn.toString();
  if (/__vite_ssr_(dynamic_)?import_|__vi_import_|\brequire\(/.test(text))
    throw new Error(`page function ${fn.name} uses an imported value; client/ functions must get what they need as parameters (see src/report/scripts.ts)`);
  return text;
}

// Transpilers that keep function names (tsx, esbuild keepNames) insert calls to a `__name` helper into function
// bodies; the page provides a no-op one so the serialised functions run as written.
const PRELUDE = `"use strict";\nvar __name = function (f) { return f; };\n`;

/** The report page's script: reads the data from `#lynx-data`, draws every section into `#app`. Needs d3 and Plot. */
export function reportScript(): string {
  return `${PRELUDE}(function (data) {
var dom = (${clientSource(domKit)})();
var traceViewer = (${clientSource(traceViewer)})(dom);
var page = (${clientSource(reportPage)})(data, dom, traceViewer);
[
${REPORT_SECTIONS.map(clientSource).join(',\n')}
].forEach(function (section) { section(page); });
document.documentElement.setAttribute('data-lynx-ready', 'true');
})(JSON.parse(document.getElementById('lynx-data').textContent));
`;
}

/**
 * The trace viewer on its own, for another page: defines the global `LynxTraceViewer` (a `TraceViewer`, see
 * client/trace-viewer.ts). Load d3 and Observable Plot before it (`plotBundles()`) and style the page with
 * `REPORT_CSS`; `traceViewerAssets()` in html.ts gives all of them.
 */
export function traceViewerScript(): string {
  return `${PRELUDE}(function () {
var dom = (${clientSource(domKit)})();
window.LynxTraceViewer = (${clientSource(traceViewer)})(dom);
})();
`;
}
