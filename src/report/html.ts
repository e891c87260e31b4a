/**
 * The self-contained page: d3 and Observable Plot UMD bundles, the report data as JSON and the page script, all
 * inline, so the file works offline and can be mailed or attached to a paper.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { InvalidInputError } from '../util/errors.js';
import type { ReportData } from './model.js';
import { reportScript, traceViewerScript } from './scripts.js';
import { REPORT_CSS } from './style.js';

/** The folder of an installed package (its exports hide package.json, so walk up from the resolved entry). */
function packageDir(name: string): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve(name);
  } catch (e) {
    throw new InvalidInputError(`the report needs the package '${name}': run npm install (${(e as Error).message})`);
  }
  let dir = dirname(entry);
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj) && (JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === name) return dir;
    const up = dirname(dir);
    if (up === dir) throw new InvalidInputError(`cannot find the folder of package '${name}' above ${entry}`);
    dir = up;
  }
}

let bundles: { d3: string; plot: string } | undefined;

/** The minified UMD builds of d3 and Observable Plot (Plot's UMD build expects a global d3). */
export function plotBundles(): { d3: string; plot: string } {
  if (!bundles) {
    const read = (pkg: string, rel: string) => {
      const p = join(packageDir(pkg), rel);
      if (!existsSync(p)) throw new InvalidInputError(`${pkg} has no ${rel}: reinstall it (npm ci)`);
      return readFileSync(p, 'utf8');
    };
    bundles = { d3: read('d3', 'dist/d3.min.js'), plot: read('@observablehq/plot', 'dist/plot.umd.min.js') };
  }
  return bundles;
}

/**
 * Script text that cannot end its <script> element early: `</script` is written `<\/script`, the same text inside
 * JavaScript strings, regular expressions and comments (the only places it can occur in code). `<!--` and `<script`
 * would switch the HTML parser into its escaped states; no bundle contains them, and a version that did would be
 * caught here instead of silently breaking the page. Model text never goes through here (see jsonForScript).
 */
export function inlineScript(code: string): string {
  if (/<!--|<script/i.test(code)) throw new Error('an inline script contains "<!--" or "<script"; it cannot be inlined safely');
  return code.replace(/<\/(script)/gi, '<\\/$1');
}

/** JSON that is safe inside <script type="application/json">: no `<`, `>` or `&` survive, nor U+2028/U+2029. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** The whole page as one HTML string. */
export function renderReportHtml(data: ReportData): string {
  const { d3, plot } = plotBundles();
  const client = reportScript();
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="lynx report">
<title>${escapeHtml(data.title)} · ${escapeHtml(data.rootName)}</title>
<style>
${REPORT_CSS}
</style>
</head>
<body>
<noscript><p class="noscript">This report draws its plots with JavaScript; enable it to see them.</p></noscript>
<div id="app"></div>
<script type="application/json" id="lynx-data">${jsonForScript(data)}</script>
<script>
${inlineScript(d3)}
</script>
<script>
${inlineScript(plot)}
</script>
<script>
${inlineScript(client)}
</script>
</body>
</html>
`;
}

/**
 * What a page needs to show traces as the report does (docs/report.md): the stylesheet, and the scripts to inline
 * or serve in this order (d3, Observable Plot, the viewer, which defines `LynxTraceViewer`). Each script has already
 * been through `inlineScript`, so it can go straight into a `<script>` element or be served as a file.
 */
export function traceViewerAssets(): { css: string; scripts: string[] } {
  const { d3, plot } = plotBundles();
  return { css: REPORT_CSS, scripts: [d3, plot, traceViewerScript()].map(inlineScript) };
}
