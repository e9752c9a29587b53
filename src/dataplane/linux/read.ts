/**
 * What the Linux data plane reads from the kernel before it plans: the state of one netns (links,
 * addresses, routes, ping_group_range), its links alone, and the nsm-ts links of many netns (the
 * inventory at start). Reads only, each one `ip -j` exec through `ip.ts`; parsing is in `state.ts`.
 */
import { parseAlias } from '../spec.js';
import type { EndState, OpOptions, OwnedLink, Side } from '../types.js';
import type { Ip, NetnsPath } from './ip.js';
import { STATE_READ_LINES, parseLinks, parseState, type KLink, type NetnsState } from './state.js';

/** A netns to scan: its URL (as reported in `OwnedLink.netns`) and a path to enter it by. */
export interface NetnsRef {
  url: string;
  path: NetnsPath;
}

function sig(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {};
}

export async function readState(ip: Ip, path: NetnsPath, side: Side, target: string, signal?: AbortSignal): Promise<NetnsState> {
  const r = await ip.read(path, STATE_READ_LINES, { op: `read ${side} netns`, target, pingGroupRange: true, ...sig(signal) });
  return parseState(r.json, r.pingGroupRange);
}

export async function readLinks(ip: Ip, path: NetnsPath, target: string, signal?: AbortSignal): Promise<Map<string, KLink>> {
  const r = await ip.read(path, ['link show'], { op: 'read links', target, ...sig(signal) });
  return parseLinks(r.json[0]);
}

/** The end `name` as the last line of a batch (a `link show`) printed it. */
export function endState(batchOutput: unknown[], name: string, created: boolean): EndState {
  const link = parseLinks(batchOutput[batchOutput.length - 1]).get(name);
  return { ifindex: link?.ifindex ?? 0, mac: link?.mac ?? '', created };
}

/** Every link with an nsm-ts alias in `all`, reading `concurrency` netns at once; a netns that vanished is skipped. */
export async function scanOwned(ip: Ip, all: NetnsRef[], concurrency: number, opts: OpOptions = {}): Promise<OwnedLink[]> {
  const out: OwnedLink[] = [];
  let next = 0;
  const worker = async () => {
    while (next < all.length) {
      const ns = all[next++]!;
      let links: Map<string, KLink>;
      try {
        links = await readLinks(ip, ns.path, 'owned', opts.signal);
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        continue;
      }
      for (const l of links.values()) {
        const a = parseAlias(l.alias);
        if (a) out.push({ netns: ns.url, name: l.name, owner: a.owner, side: a.side, ifindex: l.ifindex, mac: l.mac });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return out;
}
