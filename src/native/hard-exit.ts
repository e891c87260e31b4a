/**
 * End the process at once with libc's `_exit`, for an exit that happens while llama.cpp runs on a libuv worker thread.
 *
 * process.exit() joins libuv's worker threads before the process ends. A decode running on one cannot be joined
 * soon: it may take minutes, and each call it makes into JavaScript (a log line, a tap callback) is relayed to the
 * main thread, which is the thread waiting in the join, so the process would hang for good. Node writes stdout and
 * stderr synchronously to files, pipes and terminals, so nothing written before is lost; 'exit' listeners that come
 * after the caller's do not run.
 */
import koffi from 'koffi';

let exitFn: ((code: number) => void) | null | undefined;

/** Ends the process with `code`; returns (doing nothing) where libc's `_exit` cannot be found. */
export function hardExit(code: number): void {
  if (exitFn === undefined) {
    try {
      exitFn = koffi.load('libc.so.6').func('void _exit(int status)') as (code: number) => void;
    } catch {
      exitFn = null;
    }
  }
  exitFn?.(code);
}
