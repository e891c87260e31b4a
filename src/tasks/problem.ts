/** A problem of any benchmark, as every method, harness and report sees it. */

export interface Choice {
  label: string;
  text: string;
}

export interface Problem {
  /** unique within the benchmark and stable across runs (used to resume and to join runs) */
  id: string;
  benchmark: string;
  problem: string;
  gold: string;
  /** multiple-choice options; the gold is then one of their labels */
  choices?: Choice[];
  meta: Record<string, unknown>;
}
