/**
 * The Linux data plane's writes: runs what `plan.ts` decided as `ip -batch` execs through `ip.ts`, one
 * per netns. A fresh create that fails after the link exists is rolled back, and the error still names
 * the failing step; a deleted link that is already gone is success.
 *
 * Order matters in both create and converge: the NSE end is configured first, so the client end comes up
 * with carrier already there. (If the client end were up before its peer, the client's first packets
 * would start ARP on a link without carrier; the request is lost and the kernel retries only after
 * `retrans_time`, 1 s — a 1 s outage after every re-create.)
 *
 * ping_group_range is per netns and needs a shell inside it (two more execs), so a create writes it only
 * in a netns (path and inode) where this writer has not written it yet; a converge reads it and writes it
 * when it differs, so a value changed behind our back is put back by the next repair or refresh.
 */
import { stat } from 'node:fs/promises';
import { AlreadyExistsError, DataplaneError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { parseAlias, type WantEnd, type WantPair } from '../spec.js';
import type { PairState, Side } from '../types.js';
import { IpBatchFailure, type Ip, type NetnsPath } from './ip.js';
import { planCreate, type ConvergeEnd, type StaleLink } from './plan.js';
import { endState, readLink } from './read.js';
import { L, neighbourLines } from './state.js';

function sig(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {};
}

/** Runs the removal of another owner's link under that owner's lock if it is an orphan; false if it is live. */
export type Claim = (owner: string, fn: () => Promise<void>) => Promise<boolean>;

/** Netns remembered as having ping_group_range written (oldest forgotten first beyond this). */
export const PING_GROUP_RANGE_MEMORY = 4096;

export class PairWriter {
  readonly #ip: Ip;
  readonly #log: Logger;
  /** path → inode of the netns where this writer set ping_group_range. */
  readonly #pingGroupRangeSet = new Map<NetnsPath, bigint>();

  constructor(ip: Ip, log: Logger) {
    this.#ip = ip;
    this.#log = log;
  }

  /** Whether ping_group_range of the netns at `path` still needs writing; the inode to remember once written. */
  async #pingGroupRangeNeeded(path: NetnsPath): Promise<{ needed: boolean; ino?: bigint }> {
    const ino = await stat(path, { bigint: true }).then((s) => s.ino, () => undefined);
    return { needed: ino === undefined || this.#pingGroupRangeSet.get(path) !== ino, ...(ino !== undefined ? { ino } : {}) };
  }

  #pingGroupRangeWritten(path: NetnsPath, ino: bigint | undefined): void {
    if (ino === undefined) return;
    this.#pingGroupRangeSet.delete(path);
    this.#pingGroupRangeSet.set(path, ino);
    if (this.#pingGroupRangeSet.size > PING_GROUP_RANGE_MEMORY) this.#pingGroupRangeSet.delete(this.#pingGroupRangeSet.keys().next().value!);
  }

  /**
   * Creates the pair and configures both ends. With `tolerateExists`, returns undefined (nothing
   * changed) when the first line found a link with one of the names.
   */
  async create(w: WantPair, nscPath: NetnsPath, nsePath: NetnsPath, tolerateExists: boolean, signal?: AbortSignal): Promise<PairState | undefined> {
    const plan = planCreate(w, nscPath);
    const [pgrNse, pgrNsc] = await Promise.all([this.#pingGroupRangeNeeded(nsePath), this.#pingGroupRangeNeeded(nscPath)]);
    let outNse: unknown[];
    try {
      outNse = await this.#ip.batch(nsePath, plan.nse, { op: 'create pair', target: w.owner, pingGroupRange: pgrNse.needed, ...sig(signal) });
    } catch (err) {
      const f = err instanceof DataplaneError && err.cause instanceof IpBatchFailure ? err.cause : undefined;
      if (f && f.index === 0) {
        if (tolerateExists && /File exists/.test(f.reason)) return undefined;
        throw err;
      }
      // The link may exist (a later line failed, or we were cancelled mid-batch): undo.
      throw await this.#rollback(err, w, nsePath, w.nse, f === undefined);
    }
    if (pgrNse.needed) this.#pingGroupRangeWritten(nsePath, pgrNse.ino);
    let outNsc: unknown[];
    try {
      outNsc = await this.#ip.batch(nscPath, plan.nsc, { op: 'configure nsc end', target: w.owner, pingGroupRange: pgrNsc.needed, ...sig(signal) });
    } catch (err) {
      throw await this.#rollback(err, w, nsePath, w.nse, false);
    }
    if (pgrNsc.needed) this.#pingGroupRangeWritten(nscPath, pgrNsc.ino);
    const skipped = new Set([...(pgrNse.needed ? [] : ['nse: set ping_group_range']), ...(pgrNsc.needed ? [] : ['nsc: set ping_group_range'])]);
    return { nsc: endState(outNsc, w.nsc.name, true), nse: endState(outNse, w.nse.name, true), actions: plan.actions.filter((a) => !skipped.has(a)) };
  }

  /**
   * Converges both ends in place. After a change, neighbour entries left INCOMPLETE during the outage are
   * dropped, so the next packet resolves at once instead of after the kernel's 1 s ARP retransmit, and the
   * permanent entries for the peer's addresses are set again (a link set down loses them).
   */
  async converge(w: WantPair, nscPath: NetnsPath, nsePath: NetnsPath, nsc: ConvergeEnd, nse: ConvergeEnd, signal?: AbortSignal): Promise<void> {
    const nseOpts = { op: 'converge nse end', target: w.owner, pingGroupRange: nse.pingGroupRange, ...sig(signal) };
    const nscOpts = { op: 'converge nsc end', target: w.owner, pingGroupRange: nsc.pingGroupRange, ...sig(signal) };
    if (nsc.lines.length + nse.lines.length > 0) {
      await this.#ip.batch(nsePath, [...nse.lines, L.flushNeigh(w.nse.name), ...neighbourLines(w.nse, w.nsc, nsc.link.mac)], nseOpts);
      await this.#ip.batch(nscPath, [...nsc.lines, L.flushNeigh(w.nsc.name), ...neighbourLines(w.nsc, w.nse, nse.link.mac)], nscOpts);
    } else if (nsc.pingGroupRange || nse.pingGroupRange) {
      await Promise.all([nse.pingGroupRange ? this.#ip.batch(nsePath, [], nseOpts) : undefined, nsc.pingGroupRange ? this.#ip.batch(nscPath, [], nscOpts) : undefined]);
    }
    if (nse.pingGroupRange) this.#pingGroupRangeWritten(nsePath, (await this.#pingGroupRangeNeeded(nsePath)).ino);
    if (nsc.pingGroupRange) this.#pingGroupRangeWritten(nscPath, (await this.#pingGroupRangeNeeded(nscPath)).ino);
  }

  /**
   * Deletes the links in the way of a create: `w.owner`'s own, and orphans of other owners, each under
   * its owner's lock through `claim` (false: the owner became live since the plan → AlreadyExistsError,
   * that link untouched). Returns the actions.
   */
  async deleteStale(w: WantPair, paths: Record<Side, NetnsPath>, stale: StaleLink[], claim: Claim, signal?: AbortSignal): Promise<string[]> {
    const actions: string[] = [];
    for (const { side, link, owner } of stale) {
      const del = () => this.deleteLink(paths[side], link.name, w.owner, signal);
      if (owner === w.owner) await del();
      else if (!(await claim(owner, del))) throw new AlreadyExistsError(`${side} interface ${link.name} already exists in netns ${w[side].netns}: it belongs to connection ${owner}`);
      actions.push(`${side}: delete stale link ${link.name} (${link.alias})`);
    }
    return actions;
  }

  /** Deletes a link; "Cannot find device" is success (a veth peer goes with its other end). */
  async deleteLink(path: NetnsPath, name: string, target: string, signal?: AbortSignal): Promise<void> {
    const failures = await this.#ip.batchAll(path, [L.del(name)], { op: 'delete link', target, ...sig(signal) });
    const real = failures.filter((f) => !/Cannot find device|does not exist/.test(f.reason));
    if (real.length) throw new DataplaneError('delete link', `${name} in netns ${path}: ${real[0]!.reason}`);
  }

  /** Deletes the end `end` (and so its peer) that a failed create made; returns the error to throw. */
  async #rollback(err: unknown, w: WantPair, path: NetnsPath, end: WantEnd, onlyIfOwned: boolean): Promise<unknown> {
    try {
      if (onlyIfOwned) {
        const link = await readLink(this.#ip, path, end.name, w.owner);
        const a = parseAlias(link?.alias);
        if (!link || !a || a.owner !== w.owner) return err;
      }
      await this.deleteLink(path, end.name, w.owner);
      this.#log.debug({ connId: w.owner, step: err instanceof DataplaneError ? err.step : undefined }, 'rolled back fresh create');
      return err;
    } catch (rbErr) {
      if (err instanceof DataplaneError) {
        return new DataplaneError(err.step, `${err.message.slice(err.step.length + 2)} (rollback failed: ${errorMessage(rbErr)})`, { cause: err.cause });
      }
      return err;
    }
  }
}
