import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CLS_LOCAL, MECH_KERNEL } from '../../api/constants.js';
import { Connection, type Mechanism } from '../../api/gen/connection.js';
import type { IPContext } from '../../api/gen/connectioncontext.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { networkServiceChain, type NetworkServiceHandler } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { AlreadyExistsError, DataplaneError, InvalidArgumentError } from '../../core/errors.js';
import { silentLogger } from '../../core/log.js';
import { FakeDataPlane } from '../../dataplane/fake/index.js';
import { linuxDataPlane } from '../../dataplane/linux/index.js';
import { addNetns, delNetns, linkNames, linuxSkipReason } from '../../dataplane/linux/testenv.js';
import type { DataPlane, OpOptions, PairSpec } from '../../dataplane/types.js';
import { count } from '../../testing/count.js';
import { beginServer } from '../begin/index.js';
import { mechanismTranslationClient } from '../mechanisms/mechanism-translation/index.js';
import { DEFAULT_MTU, xconnectServer } from './index.js';

const ctx = () => newContext();
const NSC_NS = 'nsc-pod';
const NSE_NS = 'nse-pod';
const IPS: Partial<IPContext> = { srcIpAddrs: ['172.16.1.101/32'], dstIpAddrs: ['172.16.1.100/32'] };

function kernel(netns: string, name: string): Mechanism {
  return { cls: CLS_LOCAL, type: MECH_KERNEL, parameters: { inodeURL: netns, name } };
}

/** A request as it reaches xconnect: NSC-side mechanism selected, IP context filled in. */
function request(id: string, nscName = 'nsm-1', ips: Partial<IPContext> = IPS, mtu = 0): NetworkServiceRequest {
  return {
    connection: Connection.fromPartial({ id, networkService: 'ns-1', mechanism: kernel(NSC_NS, nscName), context: { ipContext: ips, MTU: mtu } }),
    mechanismPreferences: [],
  };
}

/** Plays the NSE: selects a kernel interface in its netns named after the NSC's, counts closes. */
function fakeNse(): NetworkServiceHandler & { closes: string[] } {
  const closes: string[] = [];
  return {
    closes,
    request: async (r) => {
      const conn = Connection.fromPartial(r.connection!);
      conn.mechanism = r.connection!.mechanism ?? kernel(NSE_NS, `nse-${r.connection!.id}`);
      return conn;
    },
    close: async (c) => void closes.push(c.id),
  };
}

/** begin → xconnect → count → mechanism-translation → fake NSE: the forwarder's chain, minus the network. */
function setup<D extends DataPlane = FakeDataPlane>(dp: D = new FakeDataPlane() as unknown as D) {
  const nse = fakeNse();
  const below = count('below-xconnect');
  const chain = networkServiceChain('xconnect-test', [beginServer(), xconnectServer({ dataplane: dp }), below, mechanismTranslationClient()], { tail: nse });
  return { dp, nse, below, chain };
}

describe('xconnect', () => {
  it('Request ensures the pair from both mechanisms and the IP context; the data plane holds the connection', async () => {
    const { dp, chain } = setup();
    const conn = await chain.request(request('c1'), ctx());
    const nsc = dp.link(NSC_NS, 'nsm-1');
    const nse = dp.link(NSE_NS, 'nse-c1');
    assert.deepEqual([nsc?.alias, nsc?.addrs, nsc?.up], ['nsm-ts:c1:nsc', ['172.16.1.101/32'], true]);
    assert.deepEqual([nse?.alias, nse?.addrs, nse?.up], ['nsm-ts:c1:nse', ['172.16.1.100/32'], true]);
    assert.equal(nsc?.mtu, DEFAULT_MTU);
    assert.equal(conn.context?.MTU, DEFAULT_MTU);
    assert.deepEqual(dp.held(), ['c1']);
    assert.ok(dp.reachable(NSC_NS, '172.16.1.100'));
  });

  it('the MTU of the connection is used when set', async () => {
    const { dp, chain } = setup();
    const conn = await chain.request(request('c1', 'nsm-1', IPS, 1400), ctx());
    assert.equal(dp.link(NSE_NS, 'nse-c1')?.mtu, 1400);
    assert.equal(conn.context?.MTU, 1400);
  });

  it('a repeated Request converges: nothing changes when healthy, a broken link is repaired in place', async () => {
    const { dp, chain } = setup();
    await chain.request(request('c1'), ctx());
    const first = dp.link(NSC_NS, 'nsm-1')!;
    const mutations = dp.mutations;
    await chain.request(request('c1'), ctx());
    assert.equal(dp.mutations, mutations, 'a healthy pair is left as it is');
    dp.setDown(NSC_NS, 'nsm-1');
    await chain.request(request('c1'), ctx());
    const after = dp.link(NSC_NS, 'nsm-1')!;
    assert.deepEqual([after.up, after.ifindex, after.mac], [true, first.ifindex, first.mac]);
    assert.ok(dp.reachable(NSC_NS, '172.16.1.100'));
  });

  it('Close removes exactly the connection\'s links, releases it, and calls next', async () => {
    const { dp, nse, chain } = setup();
    const c1 = await chain.request(request('c1', 'nsm-1'), ctx());
    await chain.request(request('c2', 'nsm-2', { srcIpAddrs: ['172.16.1.103/32'], dstIpAddrs: ['172.16.1.102/32'] }), ctx());
    dp.addForeignLink(NSC_NS, 'eth0');
    await chain.close(c1, ctx());
    assert.deepEqual(dp.links(NSC_NS).map((l) => l.name).sort(), ['eth0', 'nsm-2']);
    assert.deepEqual(dp.links(NSE_NS).map((l) => l.name), ['nse-c2']);
    assert.deepEqual(dp.held(), ['c2']);
    assert.deepEqual(nse.closes, ['c1']);
  });

  it('a failed ensure on a first Request: the error names the step, nothing is left, downstream is closed', async () => {
    const { dp, nse, chain } = setup();
    // A next hop equal to the NSE end's own address fails after the pair exists: the data plane rolls back.
    const ips = { ...IPS, dstRoutes: [{ prefix: '10.50.0.0/16', nextHop: '172.16.1.100', marks: [] }] };
    await assert.rejects(chain.request(request('c1', 'nsm-1', ips), ctx()), (e: Error) => e instanceof DataplaneError && e.step === 'add route 10.50.0.0/16 via 172.16.1.100');
    assert.deepEqual([dp.links(NSC_NS), dp.links(NSE_NS)], [[], []]);
    assert.deepEqual(dp.held(), []);
    assert.deepEqual(nse.closes, ['c1']);
  });

  it('a foreign link with the interface name is not touched; the Request fails with AlreadyExists and downstream is closed', async () => {
    const { dp, nse, chain } = setup();
    const foreign = dp.addForeignLink(NSC_NS, 'nsm-1');
    await assert.rejects(chain.request(request('c1'), ctx()), (e: Error) => e instanceof AlreadyExistsError && /nsm-1 already exists in netns nsc-pod and is not owned by nsm-ts/.test(e.message));
    assert.deepEqual(dp.link(NSC_NS, 'nsm-1'), foreign);
    assert.deepEqual(nse.closes, ['c1']);
  });

  it('a malformed client end is refused naming the field before anything downstream is set up', async () => {
    for (const [mechanism, field] of [
      [{ cls: CLS_LOCAL, type: 'MEMIF', parameters: {} }, 'nsc.mechanism.type'],
      [kernel('', 'nsm-1'), 'nsc.mechanism.parameters.inodeURL'],
      [kernel(NSC_NS, '..'), 'nsc.mechanism.parameters.name'],
      [kernel(NSC_NS, 'x'.repeat(16)), 'nsc.mechanism.parameters.name'],
      [kernel(NSC_NS, 'a/b'), 'nsc.mechanism.parameters.name'],
    ] as const) {
      const { dp, nse, below, chain } = setup();
      const req = request('c1');
      req.connection!.mechanism = mechanism;
      await assert.rejects(chain.request(req, ctx()), (e: Error & { field?: string }) => e instanceof InvalidArgumentError && e.field === field);
      assert.equal(below.requests, 0, `${field}: nothing went downstream`);
      assert.deepEqual(nse.closes, []);
      assert.deepEqual([dp.links(NSC_NS), dp.held()], [[], []]);
    }
  });

  it('an interface name another connection has in that netns: AlreadyExists naming the owner, the other connection untouched', async () => {
    const { dp, nse, chain } = setup();
    await chain.request(request('c1', 'nsm-1'), ctx());
    const before = dp.link(NSC_NS, 'nsm-1');
    const other = request('c2', 'nsm-1', { srcIpAddrs: ['172.16.1.103/32'], dstIpAddrs: ['172.16.1.102/32'] });
    await assert.rejects(chain.request(other, ctx()), (e: Error) => e instanceof AlreadyExistsError && e.message.includes('nsc interface nsm-1 already exists in netns nsc-pod: it belongs to connection c1'));
    assert.deepEqual(dp.link(NSC_NS, 'nsm-1'), before);
    assert.deepEqual(dp.links(NSE_NS).map((l) => l.name), ['nse-c1']);
    assert.deepEqual(dp.held(), ['c1']);
    assert.deepEqual(nse.closes, ['c2'], 'what the endpoint gave c2 goes back');
    assert.ok(dp.reachable(NSC_NS, '172.16.1.100'));
  });

  it('a first Request whose caller went away while the pair was being made still closes downstream (own deadline)', async () => {
    const caller = new AbortController();
    class CallerLeaves extends FakeDataPlane {
      override async ensure(spec: PairSpec, opts?: OpOptions) {
        caller.abort();
        return super.ensure(spec, opts);
      }
    }
    const dp = new CallerLeaves();
    const nse = fakeNse();
    const closedAborted: boolean[] = [];
    const tail: NetworkServiceHandler = { request: nse.request, close: async (c, cx) => (closedAborted.push(cx.signal.aborted), nse.close(c, cx)) };
    const chain = networkServiceChain('xconnect-test', [beginServer(), xconnectServer({ dataplane: dp }), mechanismTranslationClient()], { tail });
    await assert.rejects(chain.request(request('c1'), newContext({ signal: caller.signal })));
    assert.deepEqual(nse.closes, ['c1']);
    assert.deepEqual(closedAborted, [false], 'the Close downstream does not run on the caller\'s signal');
    assert.deepEqual(dp.held(), []);
  });

  it('a failed re-Request keeps the connection and its links; Close still removes them', async () => {
    const { dp, nse, chain } = setup();
    const conn = await chain.request(request('c1'), ctx());
    await assert.rejects(chain.request(request('c1', 'nsm-1', { ...IPS, srcIpAddrs: ['172.16.1.999/32'] }), ctx()), InvalidArgumentError);
    assert.deepEqual(nse.closes, []);
    assert.ok(dp.link(NSC_NS, 'nsm-1'));
    assert.deepEqual(dp.held(), ['c1']);
    await chain.close(conn, ctx());
    assert.deepEqual([dp.links(NSC_NS), dp.links(NSE_NS)], [[], []]);
    assert.deepEqual(dp.held(), []);
  });

  it('a failed removal is logged, not thrown, and Close still goes on', async () => {
    class FailingRemove extends FakeDataPlane {
      override async remove(spec: PairSpec, opts?: OpOptions): Promise<void> {
        await super.remove(spec, opts);
        throw new DataplaneError('delete link', 'injected');
      }
    }
    const { nse, below, chain } = setup(new FailingRemove());
    const conn = await chain.request(request('c1'), ctx());
    await chain.close(conn, ctx());
    assert.equal(below.closes, 1);
    assert.deepEqual(nse.closes, ['c1']);
  });

  it('a Close whose caller goes away mid-removal still removes the links (own deadline, not the call\'s signal)', async () => {
    const started: AbortSignal[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    class SlowRemove extends FakeDataPlane {
      override async remove(spec: PairSpec, opts?: OpOptions): Promise<void> {
        started.push(opts?.signal ?? new AbortController().signal);
        await gate;
        return super.remove(spec, opts);
      }
    }
    const { dp, nse, chain } = setup(new SlowRemove());
    const conn = await chain.request(request('c1'), ctx());
    const caller = new AbortController();
    const closing = chain.close(conn, newContext({ signal: caller.signal })).catch(() => undefined);
    while (started.length === 0) await new Promise((r) => setImmediate(r));
    caller.abort();
    release();
    await closing;
    assert.equal(started[0]!.aborted, false, 'the removal does not run on the caller\'s signal');
    assert.deepEqual([dp.links(NSC_NS), dp.links(NSE_NS)], [[], []]);
    assert.deepEqual(dp.held(), []);
    assert.deepEqual(nse.closes, ['c1']);
  });
});

const linuxSkip = await linuxSkipReason();
describe('xconnect on real netns', { skip: linuxSkip }, () => {
  it('a Close cancelled by its caller just after the removal started still deletes the veth pair', async (t) => {
    const a = await addNetns('xa');
    const b = await addNetns('xb');
    t.after(() => delNetns(a, b));
    const linux = linuxDataPlane({ log: silentLogger });
    let removing!: () => void;
    const removalStarted = new Promise<void>((r) => (removing = r));
    const dp: DataPlane = { ...linux, remove: (spec, opts) => (removing(), linux.remove(spec, opts)) };
    const nse: NetworkServiceHandler = {
      request: async (r) => Connection.fromPartial({ ...r.connection!, mechanism: kernel(b.inodeUrl, 'nse-x1') }),
      close: async () => undefined,
    };
    const chain = networkServiceChain('xconnect-linux', [beginServer(), xconnectServer({ dataplane: dp }), mechanismTranslationClient()], { tail: nse });
    const req = request('x1');
    req.connection!.mechanism = kernel(a.inodeUrl, 'nsm-x1');
    const conn = await chain.request(req, ctx());
    assert.deepEqual([await linkNames(a), await linkNames(b)], [['nsm-x1'], ['nse-x1']]);
    const caller = new AbortController();
    const closing = chain.close(conn, newContext({ signal: caller.signal })).catch(() => undefined);
    await removalStarted;
    caller.abort();
    await closing;
    assert.deepEqual([await linkNames(a), await linkNames(b)], [[], []], 'no veth left behind');
  });
});

