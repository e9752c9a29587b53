/**
 * The ownership bookkeeping every data plane shares (`types.ts` states the guarantees): which owners it
 * holds, what `start()` found, and which of those are orphans when `collectOrphans()` runs. The
 * implementation supplies the two kernel operations, a scan for nsm-ts links and the removal of one link
 * that still carries its alias; this class holds the state. No I/O, no background work.
 */
import { throwIfAborted } from '../core/signals.js';
import type { OpOptions, OrphanReport, OwnedLink } from './types.js';

export class Inventory {
  readonly #held = new Set<string>();
  #found: OwnedLink[] = [];

  hold(owner: string): void {
    this.#held.add(owner);
  }

  release(owner: string): void {
    this.#held.delete(owner);
  }

  holds(owner: string): boolean {
    return this.#held.has(owner);
  }

  held(): string[] {
    return [...this.#held].sort();
  }

  /** Forgets what was held and what an earlier start found, then remembers what `scan` finds. */
  async start(scan: () => Promise<OwnedLink[]>): Promise<OwnedLink[]> {
    this.#held.clear();
    this.#found = [];
    const found = sortLinks(await scan());
    this.#found = found;
    return [...found];
  }

  /** Removes, one at a time, each link found at start whose owner is not held when its turn comes. */
  async collectOrphans(removeLink: (link: OwnedLink, opts: OpOptions) => Promise<void>, opts: OpOptions = {}): Promise<OrphanReport> {
    const candidates = this.#found;
    this.#found = [];
    const report: OrphanReport = { removed: [], failed: [] };
    for (const link of candidates) {
      if (opts.signal) throwIfAborted(opts.signal);
      if (this.#held.has(link.owner)) continue;
      try {
        await removeLink(link, opts);
        report.removed.push(link);
      } catch (error) {
        report.failed.push({ link, error });
      }
    }
    return report;
  }
}

function sortLinks(links: OwnedLink[]): OwnedLink[] {
  return [...links].sort((x, y) => x.owner.localeCompare(y.owner) || x.side.localeCompare(y.side) || x.netns.localeCompare(y.netns));
}
