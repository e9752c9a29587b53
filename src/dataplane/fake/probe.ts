/**
 * Data-plane probe over the {@link FakeDataPlane}, for the in-process sandbox: the fake counterpart of
 * `linux/probe.ts`, deciding faults with the same rule (`kernel-fault.ts`) from the fake's state of the
 * client's interface (carrier: the veth peer exists and is up). The client's netns and interface come
 * from the connection's kernel mechanism (`inodeURL`, `name`). `watch` polls the fake state every
 * `interval` and yields a fault when it appears or changes (edge-triggered, as kernel events are);
 * `check` reads it once. No ICMP model: `reset` is a no-op. Checked by `probe-contract.ts`.
 */
import type { Connection } from '../../api/gen/connection.js';
import { realClock, type Clock } from '../../core/clock.js';
import { delay } from '../../core/delay.js';
import { expectedInterface, kernelFault, kernelObservation, type ObservedInterface } from '../kernel-fault.js';
import type { DataPlaneProbe, Observation } from '../probe.js';
import type { FakeDataPlane } from './index.js';

export const DEFAULT_FAKE_PROBE_INTERVAL = 50;

const ABSENT: ObservedInterface = { exists: false, up: false, carrier: false, addrs: [], routes: [] };

/** The fake's state of `ifname` in `netns`, in the shape the kernel-fault rule reads. */
export function observeFake(dp: FakeDataPlane, netns: string, ifname: string): ObservedInterface {
  const l = dp.link(netns, ifname);
  if (!l) return ABSENT;
  const peer = l.peer && dp.link(l.peer.netns, l.peer.name);
  return { exists: true, up: l.up, carrier: !!peer && peer.up, addrs: l.addrs, routes: l.routes };
}

export function fakeProbe(dp: FakeDataPlane, options: { interval?: number; clock?: Clock } = {}): DataPlaneProbe {
  const interval = options.interval ?? DEFAULT_FAKE_PROBE_INTERVAL;
  const clock = options.clock ?? realClock;

  function observe(conn: Connection): Observation {
    const want = expectedInterface(conn);
    if (!want?.netns) return { ok: true };
    return kernelObservation(kernelFault(want, observeFake(dp, want.netns, want.ifname)));
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
