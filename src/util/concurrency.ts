/**
 * Run `fn(0) ... fn(count - 1)` with at most `limit` in flight, in index order of start. The engine batches the
 * decodes of concurrent calls, so this is how callers give it several sequences to decode together.
 */
export async function forEachConcurrent(count: number, limit: number, fn: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, count)) }, worker));
}
