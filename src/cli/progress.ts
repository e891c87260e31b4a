/** A progress bar with ETA on stderr (cli-progress); silent when stderr is not a terminal. */
import cliProgress from 'cli-progress';

export interface Progress {
  tick(n?: number): void;
  stop(): void;
}

/**
 * `detail`, when given, is shown after the bar and asked again at every tick (throughput, requests in flight). It gets
 * the seconds since the bar started.
 */
export function progressBar(label: string, total: number, detail?: (seconds: number) => string): Progress {
  if (!process.stderr.isTTY || total <= 0) return { tick() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} {percentage}% | ETA {eta_formatted} | {duration_formatted}${detail ? ' | {detail}' : ''}`,
      stream: process.stderr,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const t0 = performance.now();
  const payload = () => ({ detail: detail?.((performance.now() - t0) / 1000) ?? '' });
  bar.start(total, 0, payload());
  return {
    tick: (n = 1) => bar.increment(n, payload()),
    stop: () => bar.stop(),
  };
}

/** `12.3/s` (or `0.45/min` when slow): a count over seconds. */
export function rate(count: number, seconds: number, unit = ''): string {
  if (seconds <= 0) return `-${unit}/s`;
  const perSecond = count / seconds;
  return perSecond >= 0.1 ? `${perSecond.toFixed(perSecond >= 100 ? 0 : 1)}${unit}/s` : `${(perSecond * 60).toFixed(2)}${unit}/min`;
}
