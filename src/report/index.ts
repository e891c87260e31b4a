/**
 * `lynx report EXP_ROOT`: one self-contained HTML file summarising an experiment root (see docs/report.md).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { discoverRuns, loadRun, type LoadedRun } from '../eval/records.js';
import { InvalidInputError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { readConformalResults } from './conformal.js';
import { renderReportHtml } from './html.js';
import { buildReportData, type ReportData, type ReportOptions } from './model.js';

export type { ConformalHeldOut, ConformalResult, LoadedConformalResult } from './conformal.js';
export { conformalProblem, readConformalResults } from './conformal.js';
export { domKit, type Dom } from './client/dom.js';
export { traceViewer, type TraceEvent, type TraceView, type TraceViewer, type TraceViewOptions } from './client/trace-viewer.js';
export { escapeHtml, inlineScript, jsonForScript, plotBundles, renderReportHtml, traceViewerAssets } from './html.js';
export { clientSource, REPORT_SECTIONS, reportScript, traceViewerScript } from './scripts.js';
export { REPORT_CSS } from './style.js';
export * from './model.js';

/** Read an experiment root into the report's data model. Unreadable runs and files become warnings, not errors. */
export function scanExperiment(expRoot: string, opts: ReportOptions = {}): ReportData {
  const root = resolve(expRoot);
  if (!existsSync(root) || !statSync(root).isDirectory())
    throw new InvalidInputError(`experiment root not found: ${expRoot} (give the folder that holds eval/ and conformal/)`);
  const warnings: string[] = [];
  const runs: LoadedRun[] = [];
  const evalDir = join(root, 'eval');
  for (const folder of discoverRuns(root, { includeIncomplete: true })) {
    const where = `eval/${folder.benchmark}/${folder.method}/${folder.setting}`;
    try {
      const run = loadRun(folder);
      if (!run.metrics && run.predictions.length === 0) {
        warnings.push(`${where}: skipped, predictions.jsonl is empty and there is no metrics.json`);
        continue;
      }
      if (!run.metrics) warnings.push(`${where}: no metrics.json (unfinished run?); metrics computed from ${run.predictions.length} predictions`);
      runs.push(run);
    } catch (e) {
      warnings.push(`${where}: skipped, ${(e as Error).message.split(root).join('<root>')}`);
    }
  }
  // Setting folders holding only unmerged shards are invisible to discoverRuns; say so rather than drop them silently.
  if (existsSync(evalDir)) {
    const dirs = (d: string) => readdirSync(d).filter((n) => !n.startsWith('.') && statSync(join(d, n)).isDirectory());
    for (const b of dirs(evalDir))
      for (const m of dirs(join(evalDir, b)))
        for (const s of dirs(join(evalDir, b, m))) {
          const dir = join(evalDir, b, m, s);
          if (!existsSync(join(dir, 'metrics.json')) && !existsSync(join(dir, 'predictions.jsonl')) && dirs(dir).some((n) => /^shard-\d+-of-\d+$/.test(n)))
            warnings.push(`eval/${b}/${m}/${s}: only unmerged shards, not shown (merge the shards first)`);
        }
  } else {
    warnings.push('no eval/ folder: there are no evaluation runs to show');
  }
  const conformal = readConformalResults(root);
  warnings.push(...conformal.warnings);
  return buildReportData(
    runs,
    conformal.results,
    { rootName: basename(root), hasConformalFolder: existsSync(join(root, 'conformal')), warnings },
    opts,
  );
}

export interface WriteReportResult {
  path: string;
  bytes: number;
  data: ReportData;
}

/** Scan `expRoot` and write the report to `outPath` (default `<expRoot>/report.html`) atomically. */
export function writeReport(expRoot: string, outPath?: string, opts: ReportOptions = {}): WriteReportResult {
  const data = scanExperiment(expRoot, opts);
  const path = resolve(outPath ?? join(expRoot, 'report.html'));
  const html = renderReportHtml(data);
  writeFileAtomic(path, html);
  return { path, bytes: Buffer.byteLength(html, 'utf8'), data };
}
