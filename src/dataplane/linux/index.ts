/**
 * The Linux kernel data plane: one veth pair per connection, each end created directly in its netns,
 * configured through `ip -batch` (one exec per netns), converged rather than replayed.
 *
 * `ensure`:
 * - Fast path for an owner this instance has not converged yet: one batch in the NSC netns creates the
 *   pair and configures the NSC end (`link add` is the first line, so a name that already exists stops
 *   the batch before anything changed), one batch in the NSE netns configures the other end: two execs.
 *   A later line failing rolls back what the call created and throws a DataplaneError naming the step.
 * - Otherwise (or when the name exists): read both netns (one exec each, in parallel) and converge:
 *   a link with the name but without our alias → DataplaneError, nothing changed; ours but another owner,
 *   or not paired → delete and recreate; ours → MTU, up, addresses (link-local kept), routes (`replace`,
 *   strays removed), ping_group_range. A healthy pair is never recreated.
 * `remove` deletes by name after checking the alias; `owned` scans every netns on the machine.
 *
 * Mirrors sdk-kernel's `connectioncontextkernel` + kernel forwarder veth handling (see style-anchors §4).
 */
import { DataplaneError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { normalizeSpec, parseAlias, type WantEnd, type WantPair } from '../spec.js';
import type { DataPlane, EndState, OpOptions, OwnedLink, PairSpec, PairState, Side } from '../types.js';
import { IpBatchFailure, Ip, PING_GROUP_RANGE, type BatchLine, type IpOptions, type NetnsPath } from './ip.js';
import { NetnsResolver, listNetns } from './netns.js';
import { L, STATE_READ_LINES, configureLines, convergeLines, parseLinks, parseState, type KLink, type NetnsState } from './state.js';

export { ownNetnsUrl, NetnsResolver, listNetns } from './netns.js';
export { readInterface, watchLinks } from './inspect.js';

export interface LinuxDataPlaneOptions extends IpOptions {
  /** How many netns `owned()` reads at once. */
  scanConcurrency?: number;
}

export const DEFAULT_SCAN_CONCURRENCY = 8;

export interface LinuxDataPlane extends DataPlane {
  readonly resolver: NetnsResolver;
}

export function linuxDataPlane(deps: { log: Logger }, options: LinuxDataPlaneOptions = {}): LinuxDataPlane {
  const log = deps.log.child({ element: 'dataplane-linux' });
  const ip = new Ip(log, options);
  const resolver = new NetnsResolver();
  const scanConcurrency = options.scanConcurrency ?? DEFAULT_SCAN_CONCURRENCY;
  /** Owners converged by this instance: their next ensure reads first instead of trying to create. */
  const known = new Set<string>();

  const readState = async (path: NetnsPath, side: Side, target: string, signal?: AbortSignal): Promise<NetnsState> => {
    const r = await ip.read(path, STATE_READ_LINES, { op: `read ${side} netns`, target, pingGroupRange: true, ...(signal ? { signal } : {}) });
    return parseState(r.json, r.pingGroupRange);
  };

  const readLinks = async (path: NetnsPath, target: string, signal?: AbortSignal): Promise<Map<string, KLink>> => {
    const r = await ip.read(path, ['link show'], { op: 'read links', target, ...(signal ? { signal } : {}) });
    return parseLinks(r.json[0]);
  };

  const endState = (json: unknown[], name: string, created: boolean): EndState => {
    const link = parseLinks(json[json.length - 1]).get(name);
    return { ifindex: link?.ifindex ?? 0, mac: link?.mac ?? '', created };
  };

  /** Deletes a link; "Cannot find device" is success (a veth peer goes with its other end). */
  const deleteLink = async (path: NetnsPath, name: string, target: string, signal?: AbortSignal): Promise<void> => {
    const failures = await ip.batchAll(path, [L.del(name)], { op: 'delete link', target, ...(signal ? { signal } : {}) });
    const real = failures.filter((f) => !/Cannot find device|does not exist/.test(f.reason));
    if (real.length) throw new DataplaneError('delete link', `${name} in netns ${path}: ${real[0]!.reason}`);
  };

  /**
   * Creates the pair and configures both ends. Returns undefined (nothing changed) when `tolerateExists`
   * and the first line found a link with one of the names.
   *
   * Order matters: the pair is created from the NSE side and the NSE end is configured first, so the
   * client end comes up with carrier already there. (If the client end were up before its peer, the
   * client's first packets would start ARP on a link without carrier; the request is lost and the kernel
   * retries only after `retrans_time`, 1 s — a 1 s outage after every re-create.)
   */
  const create = async (w: WantPair, pa: NetnsPath, pb: NetnsPath, tolerateExists: boolean, signal?: AbortSignal): Promise<PairState | undefined> => {
    const sig = signal ? { signal } : {};
    const linesB: BatchLine[] = [L.create(w.nse.name, w.nsc.name, pa, w.mtu), ...configureLines(w.nse), L.show(w.nse.name)];
    const linesA: BatchLine[] = [...configureLines(w.nsc), L.show(w.nsc.name)];
    let outB: unknown[];
    try {
      outB = await ip.batch(pb, linesB, { op: 'create pair', target: w.owner, pingGroupRange: true, ...sig });
    } catch (err) {
      const f = err instanceof DataplaneError && err.cause instanceof IpBatchFailure ? err.cause : undefined;
      if (f && f.index === 0) {
        if (tolerateExists && /File exists/.test(f.reason)) return undefined;
        throw err;
      }
      // The link may exist (a later line failed, or we were cancelled mid-batch): undo.
      throw await rollback(err, w, pb, w.nse, f === undefined);
    }
    let outA: unknown[];
    try {
      outA = await ip.batch(pa, linesA, { op: 'configure nsc end', target: w.owner, pingGroupRange: true, ...sig });
    } catch (err) {
      throw await rollback(err, w, pb, w.nse, false);
    }
    known.add(w.owner);
    const actions = [
      `create veth ${w.nsc.name}/${w.nse.name}`,
      ...describe('nse', linesB.slice(1, -1)),
      'nse: set ping_group_range',
      ...describe('nsc', linesA.slice(0, -1)),
      'nsc: set ping_group_range',
    ];
    return { nsc: endState(outA, w.nsc.name, true), nse: endState(outB, w.nse.name, true), actions };
  };

  /** Deletes the end `end` (and so its peer) that a failed create made; returns the error to throw. */
  const rollback = async (err: unknown, w: WantPair, path: NetnsPath, end: WantEnd, onlyIfOwned: boolean): Promise<unknown> => {
    try {
      if (onlyIfOwned) {
        const link = (await readLinks(path, w.owner)).get(end.name);
        const a = parseAlias(link?.alias);
        if (!link || !a || a.owner !== w.owner) return err;
      }
      await deleteLink(path, end.name, w.owner);
      log.debug({ connId: w.owner, step: err instanceof DataplaneError ? err.step : undefined }, 'rolled back fresh create');
      return err;
    } catch (rbErr) {
      if (err instanceof DataplaneError) {
        return new DataplaneError(err.step, `${err.message.slice(err.step.length + 2)} (rollback failed: ${errorMessage(rbErr)})`, { cause: err.cause });
      }
      return err;
    }
  };

  const checkNotForeign = (link: KLink | undefined, end: WantEnd): void => {
    if (!link) return;
    if (parseAlias(link.alias)) return;
    const who = link.alias ? `alias "${link.alias}"` : 'no alias';
    throw new DataplaneError(`check ${end.side} link`, `a link named ${end.name} already exists in netns ${end.netns} and is not owned by nsm-ts (${who}, ifindex ${link.ifindex}); refusing to touch it`);
  };

  const isOurs = (link: KLink | undefined, owner: string, side: Side): link is KLink => {
    const a = parseAlias(link?.alias);
    return !!link && !!a && a.owner === owner && a.side === side && link.kind === 'veth';
  };

  return {
    resolver,

    async ensure(spec: PairSpec, opts: OpOptions = {}): Promise<PairState> {
      const w = normalizeSpec(spec);
      const [pa, pb] = await Promise.all([resolver.resolve(w.nsc.netns), resolver.resolve(w.nse.netns)]);
      if (!known.has(w.owner)) {
        const fresh = await create(w, pa, pb, true, opts.signal);
        if (fresh) return fresh;
      }
      const [sa, sb] = await Promise.all([readState(pa, 'nsc', w.owner, opts.signal), readState(pb, 'nse', w.owner, opts.signal)]);
      const la = sa.links.get(w.nsc.name);
      const lb = sb.links.get(w.nse.name);
      checkNotForeign(la, w.nsc);
      checkNotForeign(lb, w.nse);
      const paired = isOurs(la, w.owner, 'nsc') && isOurs(lb, w.owner, 'nse') && la.peerIfindex === lb.ifindex && lb.peerIfindex === la.ifindex;
      if (!paired) {
        const actions: string[] = [];
        if (la) {
          await deleteLink(pa, w.nsc.name, w.owner, opts.signal);
          actions.push(`nsc: delete stale link ${w.nsc.name} (${la.alias})`);
        }
        if (lb) {
          await deleteLink(pb, w.nse.name, w.owner, opts.signal);
          actions.push(`nse: delete stale link ${w.nse.name} (${lb.alias})`);
        }
        const fresh = (await create(w, pa, pb, false, opts.signal))!;
        return { ...fresh, actions: [...actions, ...fresh.actions] };
      }
      const linesA = convergeLines(w.nsc, la, sa, w.mtu);
      const linesB = convergeLines(w.nse, lb, sb, w.mtu);
      const pgrA = sa.pingGroupRange !== PING_GROUP_RANGE;
      const pgrB = sb.pingGroupRange !== PING_GROUP_RANGE;
      const actions = [...describe('nsc', linesA), ...(pgrA ? ['nsc: set ping_group_range'] : []), ...describe('nse', linesB), ...(pgrB ? ['nse: set ping_group_range'] : [])];
      const sig = opts.signal ? { signal: opts.signal } : {};
      if (linesA.length + linesB.length > 0) {
        // NSE end first, then the client end; then neighbour entries left INCOMPLETE during the outage are
        // dropped, so the next packet resolves at once instead of after the kernel's 1 s ARP retransmit.
        await ip.batch(pb, [...linesB, L.flushNeigh(w.nse.name)], { op: 'converge nse end', target: w.owner, pingGroupRange: pgrB, ...sig });
        await ip.batch(pa, [...linesA, L.flushNeigh(w.nsc.name)], { op: 'converge nsc end', target: w.owner, pingGroupRange: pgrA, ...sig });
      } else if (pgrA || pgrB) {
        await Promise.all([
          pgrB ? ip.batch(pb, [], { op: 'converge nse end', target: w.owner, pingGroupRange: true, ...sig }) : undefined,
          pgrA ? ip.batch(pa, [], { op: 'converge nsc end', target: w.owner, pingGroupRange: true, ...sig }) : undefined,
        ]);
      }
      known.add(w.owner);
      return { nsc: { ifindex: la.ifindex, mac: la.mac, created: false }, nse: { ifindex: lb.ifindex, mac: lb.mac, created: false }, actions };
    },

    async remove(spec: PairSpec, opts: OpOptions = {}): Promise<void> {
      const w = normalizeSpec(spec);
      known.delete(w.owner);
      const [pa, pb] = await Promise.all([resolver.tryResolve(w.nsc.netns), resolver.tryResolve(w.nse.netns)]);
      const [la, lb] = await Promise.all([
        pa ? readLinks(pa, w.owner, opts.signal).then((m) => m.get(w.nsc.name)) : undefined,
        pb ? readLinks(pb, w.owner, opts.signal).then((m) => m.get(w.nse.name)) : undefined,
      ]);
      const oursA = isOurs(la, w.owner, 'nsc');
      const oursB = isOurs(lb, w.owner, 'nse');
      if (oursA) await deleteLink(pa!, w.nsc.name, w.owner, opts.signal);
      const goneWithA = oursA && oursB && la.peerIfindex === lb.ifindex && lb.peerIfindex === la.ifindex;
      if (oursB && !goneWithA) await deleteLink(pb!, w.nse.name, w.owner, opts.signal);
    },

    async owned(opts: OpOptions = {}): Promise<OwnedLink[]> {
      const all = await listNetns();
      const out: OwnedLink[] = [];
      let next = 0;
      const worker = async () => {
        while (next < all.length) {
          const ns = all[next++]!;
          let links: Map<string, KLink>;
          try {
            links = await readLinks(ns.path, 'owned', opts.signal);
          } catch (err) {
            if (opts.signal?.aborted) throw err;
            continue; // the netns went away while scanning
          }
          for (const l of links.values()) {
            const a = parseAlias(l.alias);
            if (a) out.push({ netns: ns.url, name: l.name, owner: a.owner, side: a.side, ifindex: l.ifindex, mac: l.mac });
          }
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, scanConcurrency) }, worker));
      return out.sort((x, y) => x.owner.localeCompare(y.owner) || x.side.localeCompare(y.side));
    },

    async removeOwned(link: OwnedLink, opts: OpOptions = {}): Promise<void> {
      known.delete(link.owner);
      const path = await resolver.tryResolve(link.netns);
      if (!path) return;
      const l = (await readLinks(path, link.owner, opts.signal)).get(link.name);
      const a = parseAlias(l?.alias);
      if (!l || !a || a.owner !== link.owner || a.side !== link.side) return;
      await deleteLink(path, link.name, link.owner, opts.signal);
    },
  };
}

function describe(side: Side, lines: BatchLine[]): string[] {
  return lines.map((l) => `${side}: ${l.step}`);
}
