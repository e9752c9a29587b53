/**
 * The ownership bookkeeping every data plane shares (`types.ts` states the guarantees): which owners it
 * holds, which owners have an operation running (one at a time per owner: `exclusive`), what `start()`
 * found, and which links are orphans when `collectOrphans()` or a periodic `sweep()` runs. The
 * implementation supplies the kernel operations (a scan for nsm-ts links, the removal of one link that
 * still carries its alias); this class holds the state. No I/O, no background work.
 *
 * An orphan is a link with an nsm-ts alias whose owner is neither held nor busy (not `live`). Only an
 * orphan's link may be replaced by another owner's `ensure` (`claimOrphan`); a live owner's link is
 * refused with AlreadyExistsError (`spec.ts` checkFree). `sweep()` removes an
 * orphan only when the previous sweep saw the same link (netns, name, owner, side, ifindex, MAC) orphaned
 * too, so a link gets at least one sweep interval before it goes; each removal runs under its owner's
 * lock and re-checks that the owner is still not held.
 */
import { throwIfAborted } from '../core/signals.js';
import type { OpOptions, OrphanReport, OwnedLink, SweepOptions } from './types.js';

/** Most orphan links one sweep removes; the rest wait for the next sweep. */
export const DEFAULT_SWEEP_LIMIT = 1000;

type RemoveLink = (link: OwnedLink, opts: OpOptions) => Promise<void>;

export class Inventory {
  readonly #held = new Set<string>();
  /** Per owner: the settling of the last operation queued for it (present while any is queued or running). */
  readonly #locks = new Map<string, Promise<void>>();
  #found: OwnedLink[] = [];
  /** Orphans the last sweep saw, by `netns|name`. */
  #suspects = new Map<string, OwnedLink>();

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

  /** An operation on `owner` is queued or running. */
  busy(owner: string): boolean {
    return this.#locks.has(owner);
  }

  /** `owner` is held or has an operation queued or running: its links are not another owner's to replace. */
  live(owner: string): boolean {
    return this.#held.has(owner) || this.#locks.has(owner);
  }

  /**
   * Runs `fn` under the lock of `owner` if it is not live now (its links are orphans another owner may
   * replace), and returns true; returns false, running nothing, when it is live. The check and taking the
   * lock happen at once, so `owner` cannot become live in between; and since the lock is free, `fn` starts
   * at once (no waiting on another owner while holding one's own lock).
   */
  async claimOrphan(owner: string, fn: () => Promise<void>): Promise<boolean> {
    if (this.live(owner)) return false;
    await this.exclusive(owner, fn);
    return true;
  }

  /** Runs `fn` once every earlier operation on `owner` has settled; `owner` is busy meanwhile. */
  async exclusive<T>(owner: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(owner) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.#locks.set(owner, tail);
    try {
      await prev;
      return await fn();
    } finally {
      release();
      if (this.#locks.get(owner) === tail) this.#locks.delete(owner);
    }
  }

  /** Forgets what was held and what an earlier start or sweep found, then remembers what `scan` finds. */
  async start(scan: () => Promise<OwnedLink[]>): Promise<OwnedLink[]> {
    this.#held.clear();
    this.#found = [];
    this.#suspects.clear();
    const found = sortLinks(await scan());
    this.#found = found;
    return [...found];
  }

  /** Removes, one at a time, each link found at start whose owner is not held when its turn comes. */
  async collectOrphans(removeLink: RemoveLink, opts: OpOptions = {}): Promise<OrphanReport> {
    const candidates = this.#found;
    this.#found = [];
    const report: OrphanReport = { removed: [], failed: [] };
    for (const link of candidates) {
      if (opts.signal) throwIfAborted(opts.signal);
      await this.#removeOrphan(link, removeLink, opts, report);
    }
    return report;
  }

  /**
   * Scans, then removes (one at a time, at most `opts.limit`) the orphans the previous sweep saw as they
   * are now; remembers the others for the next sweep. A failed removal is reported and tried again then.
   */
  async sweep(scan: () => Promise<OwnedLink[]>, removeLink: RemoveLink, opts: SweepOptions = {}): Promise<OrphanReport> {
    const limit = opts.limit ?? DEFAULT_SWEEP_LIMIT;
    const seen = sortLinks(await scan());
    const previous = this.#suspects;
    const orphans = seen.filter((l) => !this.#held.has(l.owner) && !this.#locks.has(l.owner));
    this.#suspects = new Map(orphans.map((l) => [linkKey(l), l]));
    const report: OrphanReport = { removed: [], failed: [] };
    let attempts = 0;
    for (const link of orphans) {
      const before = previous.get(linkKey(link));
      if (!before || !sameLink(before, link)) continue;
      if (attempts++ >= limit) break;
      if (opts.signal) throwIfAborted(opts.signal);
      if (await this.#removeOrphan(link, removeLink, opts, report)) this.#suspects.delete(linkKey(link));
    }
    return report;
  }

  /** Removes `link` under its owner's lock unless the owner is held by then; true when it is gone. */
  async #removeOrphan(link: OwnedLink, removeLink: RemoveLink, opts: OpOptions, report: OrphanReport): Promise<boolean> {
    return this.exclusive(link.owner, async () => {
      if (this.#held.has(link.owner)) return true;
      try {
        await removeLink(link, opts);
        report.removed.push(link);
        return true;
      } catch (error) {
        report.failed.push({ link, error });
        return false;
      }
    });
  }
}

function linkKey(l: OwnedLink): string {
  return `${l.netns}|${l.name}`;
}

function sameLink(a: OwnedLink, b: OwnedLink): boolean {
  return a.netns === b.netns && a.name === b.name && a.owner === b.owner && a.side === b.side && a.ifindex === b.ifindex && a.mac === b.mac;
}

function sortLinks(links: OwnedLink[]): OwnedLink[] {
  return [...links].sort((x, y) => x.owner.localeCompare(y.owner) || x.side.localeCompare(y.side) || x.netns.localeCompare(y.netns));
}
