/**
 * What the Linux data plane reads from the kernel before it plans. Per connection it reads only what the
 * connection owns: one end (its link with addresses, its routes, the netns' ping_group_range) or one link,
 * by name (`dev X` filters), so a converge or a remove costs the same whether its netns holds one link or
 * a thousand. Whole netns are read only by the inventory (`scanOwned`: at start and by the periodic orphan
 * sweep). Reads only, each one `ip -j` exec through `ip.ts`; parsing is in `state.ts`.
 */
import { parseAlias } from '../spec.js';
import { forEachLimited } from '../../core/pool.js';
import type { EndState, OpOptions, OwnedLink, Side } from '../types.js';
import { DataplaneError } from '../../core/errors.js';
import type { Ip, NetnsPath } from './ip.js';
import { endReadLines, parseLinks, parseState, type KLink, type NetnsState } from './state.js';

/** A netns to scan: its URL (as reported in `OwnedLink.netns`) and a path to enter it by. */
export interface NetnsRef {
  url: string;
  path: NetnsPath;
}

function sig(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {};
}

/**
 * The end `name` in the netns at `path`, as a NetnsState holding that link alone (with its addresses) and
 * the routes through it; empty (no link, no routes) when no link has that name.
 */
export async function readEnd(ip: Ip, path: NetnsPath, side: Side, name: string, target: string, signal?: AbortSignal): Promise<NetnsState> {
  try {
    const r = await ip.read(path, endReadLines(name), { op: `read ${side} end`, target, pingGroupRange: true, ...sig(signal) });
    const s = parseState(r.json, r.pingGroupRange);
    for (const route of s.routes) route.dev ??= name; // `dev X` filters leave the device out of the output
    return s;
  } catch (err) {
    if (isNoSuchDevice(err)) return { links: new Map(), routes: [] };
    throw err;
  }
}

/** The link `name` in the netns at `path`, or undefined when there is none. */
export async function readLink(ip: Ip, path: NetnsPath, name: string, target: string, signal?: AbortSignal): Promise<KLink | undefined> {
  try {
    const r = await ip.read(path, [`link show dev ${name}`], { op: 'read link', target, ...sig(signal) });
    return parseLinks(r.json[0]).get(name);
  } catch (err) {
    if (isNoSuchDevice(err)) return undefined;
    throw err;
  }
}

/** Every link of the netns at `path`, by name (the inventory's scan). */
export async function readLinks(ip: Ip, path: NetnsPath, target: string, signal?: AbortSignal): Promise<Map<string, KLink>> {
  const r = await ip.read(path, ['link show'], { op: 'read links', target, ...sig(signal) });
  return parseLinks(r.json[0]);
}

/** A `dev X` read failed because there is no X (what `ip` answers: `Device "X" does not exist.`). */
function isNoSuchDevice(err: unknown): boolean {
  return err instanceof DataplaneError && /does not exist|Cannot find device/.test(err.message);
}

/** The end `name` as the last line of a batch (a `link show`) printed it. */
export function endState(batchOutput: unknown[], name: string, created: boolean): EndState {
  const link = parseLinks(batchOutput[batchOutput.length - 1]).get(name);
  return { ifindex: link?.ifindex ?? 0, mac: link?.mac ?? '', created };
}

/** A found link with an nsm-ts alias; a tunnel end's kind and what the kernel shows of its parameters. */
export function ownedLink(netns: string, l: KLink, owner: string, side: Side): OwnedLink {
  const out: OwnedLink = { netns, name: l.name, owner, side, ifindex: l.ifindex, mac: l.mac };
  if (l.kind !== undefined) out.kind = l.kind;
  if (l.kind === 'vxlan') out.tunnel = { kind: 'vxlan', ...(l.vxlan ? { vni: l.vxlan.vni, port: l.vxlan.port } : {}) };
  if (l.kind === 'tun') out.tunnel = { kind: 'wireguard' };
  return out;
}

/** Every link with an nsm-ts alias in `all`, reading `concurrency` netns at once; a netns that vanished is skipped. */
export async function scanOwned(ip: Ip, all: NetnsRef[], concurrency: number, opts: OpOptions = {}): Promise<OwnedLink[]> {
  const out: OwnedLink[] = [];
  await forEachLimited(all, concurrency, async (ns) => {
    let links: Map<string, KLink>;
    try {
      links = await readLinks(ip, ns.path, 'owned', opts.signal);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      return;
    }
    for (const l of links.values()) {
      const a = parseAlias(l.alias);
      if (a) out.push(ownedLink(ns.url, l, a.owner, a.side));
    }
  });
  return out;
}
