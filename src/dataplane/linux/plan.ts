/**
 * The Linux data plane's decisions, as pure functions of what the kernel reported (`read.ts`) and the
 * wanted pair: the lines of a fresh create, whether an existing pair is converged in place or recreated,
 * and which ends a remove deletes. `apply.ts` runs the lines; nothing here does I/O.
 */
import { checkFree, isOurs, parseAlias, type WantPair } from '../spec.js';
import type { Side } from '../types.js';
import { PING_GROUP_RANGE, type BatchLine, type NetnsPath } from './ip.js';
import { L, configureLines, convergeLines, endMac, neighbourLines, type KLink, type NetnsState } from './state.js';

/** One batch per netns: the NSE one creates the pair (its first line) and configures its end. */
export interface CreatePlan {
  nse: BatchLine[];
  nsc: BatchLine[];
  /** What a successful create did, in order. */
  actions: string[];
}

/** Converging one existing end of ours. */
export interface ConvergeEnd {
  link: KLink;
  lines: BatchLine[];
  /** ping_group_range in the end's netns needs setting. */
  pingGroupRange: boolean;
}

/** A link in the way of a create: this owner's, or an orphan of `owner` (a connection not live). */
export interface StaleLink {
  side: Side;
  link: KLink;
  owner: string;
}

export type EnsurePlan =
  /** Not a pair of this owner: delete the links with the names (this owner's, or orphans: `owner`), then create. */
  | { kind: 'recreate'; stale: StaleLink[] }
  /** A healthy pair of this owner: converge both ends in place (`actions` empty when converged). */
  | { kind: 'converge'; nsc: ConvergeEnd; nse: ConvergeEnd; actions: string[] };

export function describe(side: Side, lines: BatchLine[]): string[] {
  return lines.map((l) => `${side}: ${l.step}`);
}

/**
 * Each batch ends with `link show` of its end, so the caller learns ifindex and MAC. The ends get MACs of
 * their own (`endMac`) so each batch can also give its end a permanent neighbour entry for the other
 * end's addresses: no ARP on a point-to-point link.
 */
export function planCreate(w: WantPair, nscPath: NetnsPath): CreatePlan {
  const nseConfig = configureLines(w.nse);
  const nscConfig = configureLines(w.nsc);
  const mac = { nsc: endMac(w.owner, 'nsc'), nse: endMac(w.owner, 'nse') };
  return {
    nse: [L.create(w.nse.name, w.nsc.name, nscPath, w.mtu, mac.nse, mac.nsc), ...nseConfig, ...neighbourLines(w.nse, w.nsc, mac.nsc), L.show(w.nse.name)],
    nsc: [...nscConfig, ...neighbourLines(w.nsc, w.nse, mac.nse), L.show(w.nsc.name)],
    actions: [
      `create veth ${w.nsc.name}/${w.nse.name}`,
      ...describe('nse', nseConfig),
      'nse: set ping_group_range',
      ...describe('nsc', nscConfig),
      'nsc: set ping_group_range',
    ],
  };
}

/** Both ends carry `owner`'s alias, are veths, and are each other's peer. */
export function isPair(owner: string, nsc: KLink | undefined, nse: KLink | undefined): boolean {
  return isOurs(nsc, owner, 'nsc') && isOurs(nse, owner, 'nse') && nsc.peerIfindex === nse.ifindex && nse.peerIfindex === nsc.ifindex;
}

/**
 * Throws AlreadyExistsError (nothing to do) when a link with a wanted name is not nsm-ts's or belongs to
 * another connection that is `live`.
 */
export function planEnsure(w: WantPair, nscNetns: NetnsState, nseNetns: NetnsState, live: (owner: string) => boolean): EnsurePlan {
  const la = nscNetns.links.get(w.nsc.name);
  const lb = nseNetns.links.get(w.nse.name);
  checkFree(la, w.nsc, w.owner, live);
  checkFree(lb, w.nse, w.owner, live);
  if (!isPair(w.owner, la, lb)) {
    const stale: StaleLink[] = [];
    if (la) stale.push({ side: 'nsc', link: la, owner: parseAlias(la.alias)!.owner });
    if (lb) stale.push({ side: 'nse', link: lb, owner: parseAlias(lb.alias)!.owner });
    return { kind: 'recreate', stale };
  }
  const nsc: ConvergeEnd = { link: la!, lines: convergeLines(w.nsc, la!, nscNetns, w.mtu), pingGroupRange: nscNetns.pingGroupRange !== PING_GROUP_RANGE };
  const nse: ConvergeEnd = { link: lb!, lines: convergeLines(w.nse, lb!, nseNetns, w.mtu), pingGroupRange: nseNetns.pingGroupRange !== PING_GROUP_RANGE };
  const actions = [...endActions('nsc', nsc), ...endActions('nse', nse)];
  return { kind: 'converge', nsc, nse, actions };
}

function endActions(side: Side, end: ConvergeEnd): string[] {
  return [...describe(side, end.lines), ...(end.pingGroupRange ? [`${side}: set ping_group_range`] : [])];
}

/** Which ends of `owner` a remove deletes: its own links only, and the NSE end not when it goes with its peer. */
export function planRemove(owner: string, nsc: KLink | undefined, nse: KLink | undefined): Record<Side, boolean> {
  const oursNsc = isOurs(nsc, owner, 'nsc');
  return { nsc: oursNsc, nse: isOurs(nse, owner, 'nse') && !(oursNsc && isPair(owner, nsc, nse)) };
}
