/**
 * The probe contract: one node:test suite that every `DataPlaneProbe` must pass (`fake/probe.test.ts`,
 * `linux/probe.test.ts`), stating the guarantees written in `probe.ts`. `make()` gives a fresh pair of
 * netns per test, the data plane that programs them, a probe that looks at the client's netns (`nsA`),
 * and the means to break them; every test registers `cleanup` with `t.after`. Kernel checks only: ICMP
 * freshness has no fake twin and is tested with the linux probe alone.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { Connection } from '../api/gen/connection.js';
import { MECH_KERNEL, PARAM_INODE_URL, PARAM_NAME } from '../api/constants.js';
import { sleep } from '../core/signals.js';
import type { ContractBreak } from './contract.js';
import { endsFromIpContext, type IpContextInput } from './ipcontext.js';
import type { DataPlaneProbe, KernelFaultReason, Observation } from './probe.js';
import type { DataPlane, PairSpec } from './types.js';

export interface ProbeContractEnv {
  dp: DataPlane;
  /** The client's netns (where the probe looks), as a netns URL. */
  nsA: string;
  nsB: string;
  probe: DataPlaneProbe;
  break: Pick<ContractBreak, 'setDown' | 'deleteLink' | 'flushAddrs' | 'delRoute'>;
  /** An unrelated kernel event in `ns` (a probe driven by events must not depend on the break's own). */
  nudge(ns: string): Promise<void>;
  /** Processes still running in `ns` (the fake has none). */
  processes(ns: string): Promise<number>;
  cleanup(): Promise<void>;
}

type Make = () => Promise<ProbeContractEnv>;

/** Time for a watch to subscribe to kernel events before the test breaks something. */
export const PROBE_SETTLE_MS = 500;
const FAULT_DEADLINE_MS = 5000;
const NUDGE_EVERY_MS = 250;

const P2P = { srcIpAddrs: ['172.16.1.101/32'], dstIpAddrs: ['172.16.1.100/32'], srcRoutes: [], dstRoutes: [] };
const ON_LINK = { srcIpAddrs: ['172.16.1.101/24'], dstIpAddrs: ['172.16.1.100/24'], srcRoutes: [], dstRoutes: [] };
const DUAL = { srcIpAddrs: ['172.16.1.101/32', 'fd00::101/128'], dstIpAddrs: ['172.16.1.100/32', 'fd00::100/128'], srcRoutes: [{ prefix: '10.96.0.0/12', nextHop: '' }], dstRoutes: [] };

interface Wired {
  env: ProbeContractEnv;
  conn: Connection;
}

/** A connection whose interfaces the data plane made: `nsm-1` in nsA, `nse-1` in nsB. */
async function connected(t: TestContext, make: Make, ipContext: IpContextInput = P2P): Promise<Wired> {
  const env = await make();
  t.after(() => env.cleanup());
  const ends = endsFromIpContext(ipContext);
  const spec: PairSpec = { owner: `conn-${randomBytes(6).toString('hex')}`, nsc: { netns: env.nsA, name: 'nsm-1', ...ends.nsc }, nse: { netns: env.nsB, name: 'nse-1', ...ends.nse } };
  await env.dp.ensure(spec);
  const conn = Connection.fromPartial({
    id: spec.owner,
    mechanism: { cls: 'LOCAL', type: MECH_KERNEL, parameters: { [PARAM_NAME]: 'nsm-1', [PARAM_INODE_URL]: env.nsA } },
    context: { ipContext },
  });
  return { env, conn };
}

function check(w: Wired): Promise<Observation> {
  return w.env.probe.check(w.conn, new AbortController().signal);
}

function assertFault(o: Observation, reason: KernelFaultReason): void {
  assert.equal(o.ok, false, `expected a ${reason} fault`);
  if (o.ok) return;
  assert.equal(o.source, 'kernel');
  assert.equal(o.reason, reason, o.detail);
  assert.match(o.detail, /nsm-1/);
}

/** A running watch: what it yielded so far, and its end. */
interface Watching {
  seen: Observation[];
  ac: AbortController;
  done: Promise<void>;
}

function startWatch(w: Wired): Watching {
  const ac = new AbortController();
  const seen: Observation[] = [];
  const done = (async () => {
    for await (const o of w.env.probe.watch(w.conn, ac.signal)) seen.push(o);
  })();
  return { seen, ac, done };
}

/** Waits for a fault from the watch, nudging the kernel meanwhile. */
async function nextFault(w: Wired, watching: Watching): Promise<Observation> {
  const deadline = Date.now() + FAULT_DEADLINE_MS;
  while (Date.now() < deadline) {
    const f = watching.seen.find((o) => !o.ok);
    if (f) return f;
    await sleep(NUDGE_EVERY_MS);
    await w.env.nudge(w.env.nsA);
  }
  assert.fail(`no fault yielded within ${FAULT_DEADLINE_MS} ms`);
}

async function stop(watching: Watching): Promise<void> {
  watching.ac.abort();
  await watching.done;
}

function resources(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

/** Waits until no more timers, child processes or pipes are active than in `before`. */
async function assertNoResourceLeak(before: Map<string, number>): Promise<void> {
  const kinds = ['Timeout', 'ProcessWrap', 'PipeWrap'];
  const extra = () => kinds.filter((k) => (resources().get(k) ?? 0) > (before.get(k) ?? 0));
  const deadline = Date.now() + 3000;
  while (extra().length > 0 && Date.now() < deadline) await sleep(50);
  assert.deepEqual(extra(), [], `still active: ${JSON.stringify([...resources()])}`);
}

type Breaking = (w: Wired) => Promise<void>;

const BREAKS: Array<[string, KernelFaultReason, Breaking]> = [
  ['link set down', 'down', (w) => w.env.break.setDown(w.env.nsA, 'nsm-1')],
  ['link deleted', 'missing', (w) => w.env.break.deleteLink(w.env.nsA, 'nsm-1')],
  ['peer end down', 'no-carrier', (w) => w.env.break.setDown(w.env.nsB, 'nse-1')],
  ['address removed', 'address-missing', (w) => w.env.break.flushAddrs(w.env.nsA, 'nsm-1')],
  ['route to the peer removed', 'route-missing', (w) => w.env.break.delRoute(w.env.nsA, 'nsm-1', '172.16.1.100/32')],
];

export function probeContract(name: string, make: Make): void {
  const it = (title: string, fn: (t: TestContext) => Promise<void>) => test(`${name} probe contract: ${title}`, fn);

  for (const [label, ctx] of [['point-to-point', P2P], ['dual stack with an extra route', DUAL], ['on-link peer, no route to it', ON_LINK]] as const) {
    it(`healthy connection (${label}): check ok, watch yields nothing`, async (t) => {
      const w = await connected(t, make, ctx);
      assert.deepEqual(await check(w), { ok: true });
      const watching = startWatch(w);
      try {
        await sleep(PROBE_SETTLE_MS);
        await w.env.nudge(w.env.nsA);
        await sleep(PROBE_SETTLE_MS);
      } finally {
        await stop(watching);
      }
      assert.deepEqual(watching.seen, []);
    });
  }

  for (const [label, reason, breakIt] of BREAKS) {
    it(`${label} → kernel fault '${reason}' from check and from watch`, async (t) => {
      const w = await connected(t, make);
      const watching = startWatch(w);
      try {
        await sleep(PROBE_SETTLE_MS);
        assert.deepEqual(watching.seen, []);
        await breakIt(w);
        assertFault(await check(w), reason);
        assertFault(await nextFault(w, watching), reason);
      } finally {
        await stop(watching);
      }
    });
  }

  it('a connection without a kernel mechanism is never faulty', async (t) => {
    const w = await connected(t, make);
    const other = Connection.fromPartial({ id: 'x', mechanism: { cls: 'LOCAL', type: 'MEMIF', parameters: { [PARAM_NAME]: 'nsm-1' } } });
    await w.env.break.deleteLink(w.env.nsA, 'nsm-1');
    assert.deepEqual(await w.env.probe.check(other, new AbortController().signal), { ok: true });
    const watching = startWatch({ env: w.env, conn: other });
    try {
      await sleep(PROBE_SETTLE_MS);
      await w.env.nudge(w.env.nsA);
      await sleep(PROBE_SETTLE_MS);
    } finally {
      await stop(watching);
    }
    assert.deepEqual(watching.seen, []);
  });

  it('watch ends on abort: no error, no listener, timer or process left', async (t) => {
    const w = await connected(t, make);
    const before = resources();
    const watching = startWatch(w);
    try {
      await sleep(PROBE_SETTLE_MS);
      await w.env.break.setDown(w.env.nsA, 'nsm-1');
      await nextFault(w, watching);
    } finally {
      await stop(watching);
    }
    assert.equal(getEventListeners(watching.ac.signal, 'abort').length, 0);
    await assertNoResourceLeak(before);
    assert.equal(await w.env.processes(w.env.nsA), 0);
  });

  it('watch ends when its consumer stops iterating, before any abort', async (t) => {
    const w = await connected(t, make);
    const before = resources();
    const ac = new AbortController();
    const watch = w.env.probe.watch(w.conn, ac.signal);
    const consumer = (async () => {
      for await (const o of watch) if (!o.ok) break;
    })();
    let ended = false;
    void consumer.then(() => (ended = true));
    try {
      await sleep(PROBE_SETTLE_MS);
      await w.env.break.deleteLink(w.env.nsA, 'nsm-1');
      const deadline = Date.now() + FAULT_DEADLINE_MS;
      while (!ended && Date.now() < deadline) {
        await sleep(NUDGE_EVERY_MS);
        await w.env.nudge(w.env.nsA);
      }
      assert.ok(ended, 'the consumer saw the fault and stopped');
      assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    } finally {
      ac.abort();
      await consumer;
    }
    await assertNoResourceLeak(before);
    assert.equal(await w.env.processes(w.env.nsA), 0);
  });
}
