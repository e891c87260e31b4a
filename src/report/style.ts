/** The page's stylesheet: quiet, print-friendly, readable at paper-appendix size. */
export const REPORT_CSS = `
:root {
  --fg: #1d2129; --muted: #5f6672; --faint: #8a919c; --line: #e2e5ea; --bg: #f5f6f8; --card: #ffffff;
  --accent: #2f5fc4; --ok: #1f7a3a; --ok-bg: #e4f4e8; --bad: #b42318; --bad-bg: #fdeaea;
  --cue1: rgba(60, 169, 81, 0.22); --cue1-line: #3ca951; --cue0: rgba(255, 114, 92, 0.22); --cue0-line: #e0533d;
  --cueu: rgba(239, 177, 24, 0.28); --cueu-line: #d49a00; --exit: #c0262d;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
html { background: var(--bg); }
body { margin: 0; color: var(--fg); font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
#app { max-width: 1240px; margin: 0 auto; padding: 28px 24px 60px; }
header.page { margin-bottom: 8px; }
header.page h1 { font-size: 24px; font-weight: 650; margin: 0 0 4px; letter-spacing: -0.01em; }
header.page .meta { color: var(--muted); margin: 0; }
header.page .meta code { font-family: var(--mono); font-size: 12.5px; background: #eceef2; padding: 1px 5px; border-radius: 4px; }
nav.toc { display: flex; flex-wrap: wrap; gap: 6px; margin: 14px 0 4px; }
nav.toc a { color: var(--accent); text-decoration: none; font-size: 13px; padding: 3px 10px; border: 1px solid var(--line); border-radius: 999px; background: var(--card); }
nav.toc a:hover { border-color: var(--accent); }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 20px 22px 22px; margin: 18px 0; }
section.card > h2 { font-size: 17px; font-weight: 650; margin: 0 0 2px; }
section.card > h2 .num { color: var(--faint); font-weight: 500; margin-right: 6px; }
p.lead { color: var(--muted); margin: 2px 0 14px; max-width: 900px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(500px, 1fr)); gap: 18px 22px; }
figure.plot { margin: 0; min-width: 0; }
figure.plot > figcaption { font-weight: 600; font-size: 13.5px; margin: 0 0 6px; }
figure.plot > figcaption .sub { color: var(--muted); font-weight: 400; margin-left: 6px; }
figure.plot svg { max-width: 100%; height: auto; overflow: visible; }
.legend-row { margin: 0 0 12px; }
.empty { color: var(--muted); background: #fafbfc; border: 1px dashed var(--line); border-radius: 8px; padding: 14px 16px; margin: 6px 0; }
.error { color: var(--bad); background: var(--bad-bg); border: 1px solid #f3b8b3; border-radius: 8px; padding: 12px 14px; white-space: pre-wrap; }
.table-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 8px; }
table.data { border-collapse: collapse; width: 100%; font-size: 13px; font-variant-numeric: tabular-nums; }
table.data th, table.data td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
table.data th { background: #f7f8fa; font-weight: 600; color: #39404a; position: sticky; top: 0; user-select: none; }
table.data th.sortable { cursor: pointer; }
table.data th.sortable:hover { color: var(--accent); }
table.data th .arrow { color: var(--accent); margin-left: 3px; }
table.data td.num, table.data th.num { text-align: right; }
table.data tr:last-child td { border-bottom: none; }
table.data tbody tr:hover td { background: #f8fafd; }
table.data tr.group-start td { border-top: 2px solid #d5d9e0; }
table.data .ci { color: var(--faint); font-size: 11.5px; margin-left: 4px; }
table.data .best { font-weight: 700; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 6px; vertical-align: -1px; }
.pareto-mark { color: #222; margin-left: 5px; font-size: 11px; }
.ok { color: var(--ok); } .bad { color: var(--bad); } .muted { color: var(--muted); }
.toolbar { display: flex; justify-content: flex-end; margin: 0 0 8px; }
button, select { font: inherit; font-size: 13px; color: var(--fg); background: var(--card); border: 1px solid #cfd4dc; border-radius: 6px; padding: 4px 9px; }
button { cursor: pointer; }
button:hover, select:hover { border-color: var(--accent); }
button:disabled { opacity: 0.45; cursor: default; }
.controls { display: flex; flex-wrap: wrap; gap: 10px 16px; align-items: end; margin: 4px 0 14px; }
.controls label { display: flex; flex-direction: column; gap: 3px; font-size: 12px; color: var(--muted); }
.controls select { min-width: 140px; max-width: 420px; }
.controls .nav { display: flex; gap: 6px; }
.chips { display: flex; flex-wrap: wrap; gap: 8px; margin: 0 0 12px; }
.chip { border: 1px solid var(--line); background: #fafbfc; border-radius: 8px; padding: 5px 10px; font-size: 13px; max-width: 100%; }
.chip .k { color: var(--muted); margin-right: 6px; font-size: 12px; }
.chip .v { font-family: var(--mono); font-size: 12.5px; overflow-wrap: anywhere; }
.chip.ok { background: var(--ok-bg); border-color: #b9e2c4; } .chip.bad { background: var(--bad-bg); border-color: #f3c2bd; }
details.problem { margin: 0 0 12px; }
details.problem summary { cursor: pointer; color: var(--muted); font-size: 13px; }
details.problem .body { white-space: pre-wrap; background: #fafbfc; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; margin-top: 6px; }
.trace-cols { display: grid; grid-template-columns: minmax(0, 1fr); gap: 14px; }
.text-legend { display: flex; flex-wrap: wrap; gap: 6px 16px; font-size: 12px; color: var(--muted); margin: 0 0 8px; }
.text-legend span.sample { display: inline-block; padding: 0 5px; border-radius: 3px; margin-right: 4px; font-family: var(--mono); font-size: 11.5px; color: var(--fg); }
.text-legend .lg1 { background: var(--cue1); border-bottom: 2px solid var(--cue1-line); }
.text-legend .lg0 { background: var(--cue0); border-bottom: 2px solid var(--cue0-line); }
.text-legend .lgu { background: var(--cueu); border-bottom: 2px solid var(--cueu-line); }
.text-legend .lgx { background: var(--exit); color: #fff; font-family: system-ui, sans-serif; font-weight: 700; font-size: 10px; }
.text-legend .lgs { color: #a3a9b3; background: repeating-linear-gradient(-45deg, #f4f5f7 0 6px, #eceef1 6px 12px); }
.trace-text { font-family: var(--mono); font-size: 12.8px; line-height: 1.65; white-space: pre-wrap; overflow-wrap: anywhere; background: #fcfcfd; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; max-height: 560px; overflow-y: auto; }
.trace-text mark.cue { color: inherit; border-radius: 3px; padding: 0 1px; border-bottom: 2px solid; cursor: help; }
.trace-text mark.cue.l1 { background: var(--cue1); border-color: var(--cue1-line); }
.trace-text mark.cue.l0 { background: var(--cue0); border-color: var(--cue0-line); }
.trace-text mark.cue.lu { background: var(--cueu); border-color: var(--cueu-line); }
.trace-text mark.cue.synthetic { border-bottom-style: dashed; }
.trace-text mark.cue.empty { display: inline-block; width: 3px; height: 1.1em; vertical-align: -2px; padding: 0; border: none; }
.trace-text mark.cue.empty.l1 { background: var(--cue1-line); } .trace-text mark.cue.empty.l0 { background: var(--cue0-line); } .trace-text mark.cue.empty.lu { background: var(--cueu-line); }
.trace-text mark.cue.exit { outline: 2px solid var(--exit); outline-offset: 1px; }
.trace-text mark.flash { animation: flash 1.2s ease-out; }
@keyframes flash { 0% { box-shadow: 0 0 0 4px rgba(47, 95, 196, 0.55); } 100% { box-shadow: 0 0 0 4px rgba(47, 95, 196, 0); } }
.trace-text sup.ev { font-family: system-ui, sans-serif; font-size: 9.5px; color: var(--muted); margin: 0 2px 0 1px; font-weight: 600; }
.trace-text .exit-flag { font-family: system-ui, sans-serif; font-size: 10.5px; font-weight: 700; letter-spacing: 0.04em; color: #fff; background: var(--exit); border-radius: 4px; padding: 1px 6px; margin: 0 4px; white-space: nowrap; }
.trace-text .saved { color: #a3a9b3; background: repeating-linear-gradient(-45deg, transparent 0 6px, rgba(0, 0, 0, 0.025) 6px 12px); }
.trace-text .saved mark.cue:not(.exit) { opacity: 0.6; }
.trace-text .saved mark.cue.exit { color: var(--fg); }
.trace-text .cut { color: var(--faint); font-style: italic; }
.events-wrap { max-height: 300px; overflow-y: auto; }
table.data tr.exit-row td { background: #fff1f0; }
table.data tr.clickable { cursor: pointer; }
.pill { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 999px; border: 1px solid var(--line); }
.pill.l1 { background: var(--ok-bg); color: var(--ok); border-color: #b9e2c4; }
.pill.exit { background: var(--exit); color: #fff; border-color: var(--exit); font-weight: 600; }
.pill.l0 { background: var(--bad-bg); color: var(--bad); border-color: #f3c2bd; }
ul.warnings { margin: 6px 0 0; padding-left: 20px; color: var(--muted); font-size: 13px; }
footer.page { color: var(--faint); font-size: 12px; margin-top: 26px; text-align: center; }
.noscript { max-width: 800px; margin: 40px auto; }
@media print {
  html, body { background: #fff; }
  section.card { break-inside: avoid; border: none; padding: 0; }
  nav.toc, .controls, .toolbar { display: none; }
  .trace-text, .events-wrap { max-height: none; overflow: visible; }
}
`;
