/**
 * Data-plane probe over the {@link FakeDataPlane}, for the in-process sandbox: the fake counterpart of
 * `linux/probe.ts`, reporting the same kernel-state faults of the client's interface (missing, down, no
 * carrier because the peer is missing or down, an address or a route missing). The client's netns and
 * interface come from the connection's kernel mechanism (`inodeURL`, `name`). `watch` polls the fake
 * state every `interval` and yields a fault when it appears or changes (edge-triggered, as kernel events
 * are); `check` reads it once. No ICMP model: `reset` is a no-op.
 */
import type { Connection } from '../../api/gen/connection.js';
import { MECH_KERNEL, PARAM_INODE_URL, PARAM_NAME } from '../../api/constants.js';
import { realClock, type Clock } from '../../core/clock.js';
import { delay } from '../../core/delay.js';
import type { DataPlaneProbe, Observation } from '../probe.js';
import type { FakeDataPlane } from './index.js';

export const DEFAULT_FAKE_PROBE_INTERVAL = 50;

const bare = (cidr: string) => cidr.split('/')[0]!;

export function fakeProbe(dp: FakeDataPlane, options: { interval?: number; clock?: Clock } = {}): DataPlaneProbe {
  const interval = options.interval ?? DEFAULT_FAKE_PROBE_INTERVAL;
  const clock = options.clock ?? realClock;

  function observe(conn: Connection): Observation {
    const m = conn.mechanism;
    if (m?.type !== MECH_KERNEL) return { ok: true };
    const netns = m.parameters[PARAM_INODE_URL];
    const ifname = m.parameters[PARAM_NAME];
    if (!netns || !ifname) return { ok: true };
    const l = dp.link(netns, ifname);
    if (!l) return { ok: false, source: 'kernel', detail: `interface ${ifname} is missing` };
    if (!l.up) return { ok: false, source: 'kernel', detail: `interface ${ifname} is down` };
    const peer = l.peer && dp.link(l.peer.netns, l.peer.name);
    if (!peer || !peer.up) return { ok: false, source: 'kernel', detail: `interface ${ifname} has no carrier (peer down)` };
    const ipc = conn.context?.ipContext;
    const have = new Set(l.addrs.map(bare));
    for (const a of ipc?.srcIpAddrs ?? []) if (!have.has(bare(a))) return { ok: false, source: 'kernel', detail: `address ${a} missing on ${ifname}` };
    const routed = new Set(l.routes.map((r) => bare(r.prefix)));
    for (const d of ipc?.dstIpAddrs ?? []) if (!routed.has(bare(d))) return { ok: false, source: 'kernel', detail: `route to ${bare(d)} missing on ${ifname}` };
    return { ok: true };
  }

  return {
    reset() {},
    async check(conn) {
      return observe(conn);
    },
    async *watch(conn, signal) {
      let last = '';
      while (!signal.aborted) {
        const o = observe(conn);
        const key = o.ok ? '' : o.detail;
        if (key !== last && !o.ok) yield o;
        last = key;
        try {
          await delay(clock, interval, signal);
        } catch {
          return;
        }
      }
    },
  };
}
