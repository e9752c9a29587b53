/** Bounded concurrency over a list: the one worker pool of the code base. */

/**
 * Runs `fn` on every item in list order with at most `limit` running at once; resolves when all have run.
 * A rejection of `fn` rejects the whole at once (items not yet started are still run by the other
 * workers, as a plain `Promise.all` would let them).
 */
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}
