/**
 * The playground page `lynx serve` answers at `/`: one self-contained HTML document (no build step; everything ships
 * in the package) with the report's stylesheet and trace viewer, and the playground script (client.ts).
 */
import { domKit } from '../../report/client/dom.js';
import { clientSource, escapeHtml, inlineScript, jsonForScript, traceViewerAssets } from '../../report/index.js';
import { playgroundClient, type PlaygroundConfig } from './client.js';

const PLAYGROUND_CSS = `
.pg-header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 12px; margin-bottom: 12px; }
.pg-header h1 { margin: 0; font-size: 22px; }
.pg-header input { margin-left: auto; min-width: 0; }
.controls textarea { width: 100%; box-sizing: border-box; font: inherit; padding: 8px; }
.row { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-end; margin-top: 10px; }
.field { display: flex; flex-direction: column; gap: 2px; font-size: 12px; min-width: 0; max-width: 100%; }
.field.check { flex-direction: row; align-items: center; gap: 6px; }
.field select, .field input { font: inherit; max-width: 100%; }
.field.wide { flex: 1 1 260px; }
.field.wide select { width: 100%; }
.field input[type=number] { width: 6.5em; }
button { font: inherit; padding: 6px 12px; cursor: pointer; }
button:disabled { cursor: progress; opacity: 0.6; }
.panes { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 12px; }
.pane { flex: 1 1 360px; min-width: 0; }
.pane h2 { margin-top: 0; }
.stats { display: flex; flex-wrap: wrap; gap: 10px; font-size: 13px; margin-bottom: 6px; }
.pg-text { white-space: pre-wrap; overflow-wrap: anywhere; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; max-height: 60vh; overflow-y: auto; }
mark.cue { background: #fff1b8; border-radius: 3px; padding: 0 1px; }
mark.cue-exit { background: #ffd0c2; outline: 1px solid #d9480f; }
.cue-score { font-size: 9px; color: #7a5b00; margin-left: 1px; }
.pg-exit { display: inline-block; margin: 0 4px; padding: 0 6px; border-radius: 3px; background: #c92a2a; color: #fff; font-family: system-ui, sans-serif; font-size: 11px; }
mark.cue-cut { text-decoration: line-through; opacity: 0.8; }
.answer { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; overflow-wrap: anywhere; }
.badge { padding: 1px 6px; border-radius: 8px; background: var(--line); }
.badge.exit { background: #ffd0c2; }
.compare-summary:empty { display: none; }
.compare-summary { margin-top: 12px; }
.error { color: #c92a2a; }
.muted { color: var(--muted); }
.open-trace { margin-top: 10px; }
`;

/** The playground page for a model and its problem sets. */
export function playgroundHtml(config: PlaygroundConfig): string {
  const assets = traceViewerAssets();
  const script = `"use strict";\nvar __name = function (f) { return f; };\n(function (config) {
var dom = (${clientSource(domKit)})();
(${clientSource(playgroundClient)})(config, dom, window.LynxTraceViewer);
})(JSON.parse(document.getElementById('lynx-playground').textContent));
`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lynx playground — ${escapeHtml(config.model)}</title>
<style>
${assets.css}
${PLAYGROUND_CSS}
</style>
</head>
<body>
<main id="app"></main>
<script type="application/json" id="lynx-playground">${jsonForScript(config)}</script>
${assets.scripts.map((code) => `<script>${code}</script>`).join('\n')}
<script>${inlineScript(script)}</script>
</body>
</html>
`;
}
