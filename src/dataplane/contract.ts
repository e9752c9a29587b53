/**
 * The data-plane contract: one node:test suite that every `DataPlane` implementation must pass
 * (`fake/index.test.ts`, `linux/index.test.ts`), one group of cases per guarantee in `types.ts`: create,
 * converge, ownership, failures, inventory (start, collectOrphans, the periodic sweepOrphans). `make()`
 * gives a fresh pair of netns per test and the means to inspect and break them; every test registers
 * `cleanup` with `t.after`.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { AlreadyExistsError, DataplaneError } from '../core/errors.js';
import { endsFromIpContext } from './ipcontext.js';
import type { DataPlane, InterfaceState, PairSpec } from './types.js';

/** The part of an interface's state the contract checks (the fake reports no carrier/operstate). */
export type ContractLink = Pick<InterfaceState, 'exists' | 'up' | 'ifindex' | 'mac' | 'mtu' | 'alias' | 'addrs' | 'routes'>;

/** Ways to break a netns behind the data plane's back (`ns` is the netns URL used in specs). */
export interface ContractBreak {
  setDown(ns: string, name: string): Promise<void>;
  deleteLink(ns: string, name: string): Promise<void>;
  flushAddrs(ns: string, name: string): Promise<void>;
  delRoute(ns: string, name: string, prefix: string): Promise<void>;
  addAddr(ns: string, name: string, cidr: string): Promise<void>;
  addForeignLink(ns: string, name: string): Promise<void>;
}

export interface ContractEnv {
  dp: DataPlane;
  nsA: string;
  nsB: string;
  break: ContractBreak;
  inspect(ns: string, name: string): Promise<ContractLink>;
  /** Link names in the netns (loopback excluded). */
  links(ns: string): Promise<string[]>;
  ping(ns: string, addr: string): Promise<boolean>;
  /** A new data plane over the same netns (a restarted forwarder); its `start()` looks at `nsA` and `nsB` only. */
  restart(): DataPlane;
  cleanup(): Promise<void>;
}

type Make = () => Promise<ContractEnv>;
type It = (title: string, fn: (t: TestContext) => Promise<void>) => void;

const V4 = { srcIpAddrs: ['172.16.1.101/32'], dstIpAddrs: ['172.16.1.100/32'], srcRoutes: [{ prefix: '172.16.1.100/32', nextHop: '' }, { prefix: '10.96.0.0/12', nextHop: '' }], dstRoutes: [{ prefix: '172.16.1.101/32', nextHop: '' }] };
const V6 = { srcIpAddrs: ['fd00::101/128'], dstIpAddrs: ['fd00::100/128'], srcRoutes: [{ prefix: 'fd10::/64', nextHop: '' }], dstRoutes: [] };
const DUAL = { srcIpAddrs: ['172.16.1.101/32', 'fd00::101/128'], dstIpAddrs: ['172.16.1.100/32', 'fd00::100/128'], srcRoutes: [], dstRoutes: [] };
/** Addresses no other context uses: a pair that can live beside any of the others. */
const V4_OTHER = { srcIpAddrs: ['172.16.2.101/32'], dstIpAddrs: ['172.16.2.100/32'], srcRoutes: [], dstRoutes: [] };

function owner(): string {
  return `conn-${randomBytes(6).toString('hex')}`;
}

function pairSpec(env: ContractEnv, ctx: typeof V4 | typeof V6 | typeof DUAL | typeof V4_OTHER, extra: Partial<PairSpec> = {}): PairSpec {
  const ends = endsFromIpContext(ctx);
  return { owner: owner(), nsc: { netns: env.nsA, name: 'nsm-1', ...ends.nsc }, nse: { netns: env.nsB, name: 'nse-1', ...ends.nse }, ...extra };
}

/** The same spec with other interface names (a second connection between the same netns). */
function renamed(spec: PairSpec, nsc: string, nse: string): PairSpec {
  return { ...spec, nsc: { ...spec.nsc, name: nsc }, nse: { ...spec.nse, name: nse } };
}

function sorted<T>(xs: T[]): T[] {
  return [...xs].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

async function assertConverged(env: ContractEnv, spec: PairSpec): Promise<void> {
  for (const end of [spec.nsc, spec.nse]) {
    const side = end === spec.nsc ? 'nsc' : 'nse';
    const l = await env.inspect(end.netns, end.name);
    assert.ok(l.exists, `${side} link exists`);
    assert.ok(l.up, `${side} link up`);
    assert.equal(l.alias, `nsm-ts:${spec.owner}:${side}`);
    assert.deepEqual(sorted(l.addrs), sorted(end.addrs), `${side} addrs`);
    assert.deepEqual(sorted(l.routes), sorted(end.routes), `${side} routes`);
    if (spec.mtu) assert.equal(l.mtu, spec.mtu, `${side} mtu`);
  }
}

async function assertPings(env: ContractEnv, spec: PairSpec): Promise<void> {
  for (const a of spec.nse.addrs) assert.ok(await env.ping(env.nsA, a.split('/')[0]!), `ping ${a} from nsc netns`);
  for (const a of spec.nsc.addrs) assert.ok(await env.ping(env.nsB, a.split('/')[0]!), `ping ${a} from nse netns`);
}

async function setup(t: TestContext, make: Make): Promise<ContractEnv> {
  const env = await make();
  t.after(() => env.cleanup());
  return env;
}

export function dataPlaneContract(name: string, make: Make): void {
  const it: It = (title, fn) => void test(`${name} contract: ${title}`, fn);
  createCases(it, make);
  convergeCases(it, make);
  ownershipCases(it, make);
  failureCases(it, make);
  inventoryCases(it, make);
}

/** A fresh pair works for every address family. */
function createCases(it: It, make: Make): void {
  for (const [label, ctx] of [['IPv4', V4], ['IPv6', V6], ['dual stack', DUAL]] as const) {
    it(`fresh create (${label}): both ends up with addresses and routes, ping across`, async (t) => {
      const env = await setup(t, make);
      const spec = pairSpec(env, ctx);
      const st = await env.dp.ensure(spec);
      assert.ok(st.nsc.created && st.nse.created);
      assert.ok(st.nsc.ifindex > 0 && st.nse.ifindex > 0);
      assert.match(st.nsc.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
      assert.ok(st.actions.length > 0);
      await assertConverged(env, spec);
      await assertPings(env, spec);
    });
  }
}

/** `ensure` is idempotent and repairs what was broken behind its back, in place where it can. */
function convergeCases(it: It, make: Make): void {
  it('ensure twice: second call changes nothing, same ifindex and MAC', async (t) => {
    const env = await setup(t, make);
    const spec = pairSpec(env, DUAL, { mtu: 1400 });
    const first = await env.dp.ensure(spec);
    const second = await env.dp.ensure(spec);
    assert.deepEqual(second.actions, []);
    assert.deepEqual([second.nsc.ifindex, second.nsc.mac, second.nse.ifindex, second.nse.mac], [first.nsc.ifindex, first.nsc.mac, first.nse.ifindex, first.nse.mac]);
    assert.equal(second.nsc.created || second.nse.created, false);
    await assertConverged(env, spec);
  });

  it('link set down → ensure brings it up, same ifindex and MAC, ping works', async (t) => {
    const env = await setup(t, make);
    const spec = pairSpec(env, DUAL);
    const first = await env.dp.ensure(spec);
    await env.break.setDown(env.nsA, 'nsm-1');
    assert.equal(await env.ping(env.nsA, '172.16.1.100'), false);
    const st = await env.dp.ensure(spec);
    assert.ok(st.actions.includes('nsc: set up'), st.actions.join(', '));
    assert.deepEqual([st.nsc.ifindex, st.nsc.mac], [first.nsc.ifindex, first.nsc.mac]);
    assert.equal(st.nsc.created, false);
    await assertConverged(env, spec);
    await assertPings(env, spec);
  });

  it('flushed addresses and a removed route are restored; a stray address is removed', async (t) => {
    const env = await setup(t, make);
    const spec = pairSpec(env, V4);
    const first = await env.dp.ensure(spec);
    await env.break.flushAddrs(env.nsB, 'nse-1');
    await env.break.delRoute(env.nsA, 'nsm-1', '10.96.0.0/12');
    await env.break.addAddr(env.nsA, 'nsm-1', '192.168.77.1/24');
    const st = await env.dp.ensure(spec);
    assert.ok(st.actions.includes('nse: add address 172.16.1.100/32'), st.actions.join(', '));
    assert.ok(st.actions.includes('nsc: add route 10.96.0.0/12 via 172.16.1.100'), st.actions.join(', '));
    assert.ok(st.actions.includes('nsc: remove address 192.168.77.1/24'), st.actions.join(', '));
    assert.deepEqual([st.nsc.ifindex, st.nse.ifindex], [first.nsc.ifindex, first.nse.ifindex]);
    await assertConverged(env, spec);
    await assertPings(env, spec);
    assert.deepEqual((await env.dp.ensure(spec)).actions, []);
  });

  it('changed spec converges in place (address and route replaced, not the link)', async (t) => {
    const env = await setup(t, make);
    const spec = pairSpec(env, V4);
    const first = await env.dp.ensure(spec);
    const next: PairSpec = { ...spec, nsc: { ...spec.nsc, routes: [{ prefix: '172.16.1.100/32' }, { prefix: '10.200.0.0/16', via: '172.16.1.100' }] } };
    const st = await env.dp.ensure(next);
    assert.ok(st.actions.includes('nsc: remove route 10.96.0.0/12 via 172.16.1.100'), st.actions.join(', '));
    assert.equal(st.nsc.ifindex, first.nsc.ifindex);
    await assertConverged(env, next);
  });

  it('deleted link is recreated', async (t) => {
    const env = await setup(t, make);
    const spec = pairSpec(env, V4);
    await env.dp.ensure(spec);
    await env.break.deleteLink(env.nsA, 'nsm-1');
    const st = await env.dp.ensure(spec);
    assert.ok(st.nsc.created && st.nse.created);
    await assertConverged(env, spec);
    await assertPings(env, spec);
  });
}

/** Aliases prove ownership: remove is exact; foreign links and another live connection's are never touched; an orphan's are replaced. */
function ownershipCases(it: It, make: Make): void {
  it('remove deletes both ends and nothing else; removing again succeeds', async (t) => {
    const env = await setup(t, make);
    await env.break.addForeignLink(env.nsA, 'other0');
    const spec = pairSpec(env, V4);
    await env.dp.ensure(spec);
    await env.dp.remove(spec);
    assert.deepEqual(await env.links(env.nsA), ['other0']);
    assert.deepEqual(await env.links(env.nsB), []);
    await env.dp.remove(spec);
  });

  it('remove leaves a link of another owner with the same name alone', async (t) => {
    const env = await setup(t, make);
    const spec = pairSpec(env, V4);
    await env.dp.ensure(spec);
    await env.dp.remove({ ...spec, owner: owner() });
    assert.ok((await env.inspect(env.nsA, 'nsm-1')).exists);
  });

  it('a foreign link with the requested name → AlreadyExistsError naming it, nothing changed', async (t) => {
    const env = await setup(t, make);
    await env.break.addForeignLink(env.nsA, 'nsm-1');
    const before = await env.inspect(env.nsA, 'nsm-1');
    const spec = pairSpec(env, V4);
    await assert.rejects(env.dp.ensure(spec), (e: Error) => e instanceof AlreadyExistsError && e.message.includes(`interface nsm-1 already exists in netns ${env.nsA} and is not owned by nsm-ts`));
    assert.deepEqual(await env.inspect(env.nsA, 'nsm-1'), before);
    assert.deepEqual(await env.links(env.nsA), ['nsm-1']);
    assert.deepEqual(await env.links(env.nsB), []);
    assert.deepEqual(env.dp.held(), []);
    // Same on the NSE side.
    const env2 = await setup(t, make);
    await env2.break.addForeignLink(env2.nsB, 'nse-1');
    await assert.rejects(env2.dp.ensure(pairSpec(env2, V4)), (e: Error) => e instanceof AlreadyExistsError && e.message.includes(`interface nse-1 already exists in netns ${env2.nsB} and is not owned by nsm-ts`));
    assert.deepEqual(await env2.links(env2.nsA), []);
    assert.deepEqual(await env2.links(env2.nsB), ['nse-1']);
  });

  it('a name taken by another live connection, either end → AlreadyExistsError naming it, the netns and the owner; the other pair untouched', async (t) => {
    const env = await setup(t, make);
    const first = pairSpec(env, V4);
    const st = await env.dp.ensure(first);
    const ids = async () => [(await env.inspect(env.nsA, 'nsm-1')).ifindex, (await env.inspect(env.nsB, 'nse-1')).ifindex];
    // The NSC end's name, then the NSE end's name, taken by `first`.
    const sameNsc = renamed(pairSpec(env, V4_OTHER), 'nsm-1', 'nse-2');
    const sameNse = renamed(pairSpec(env, V4_OTHER), 'nsm-2', 'nse-1');
    for (const [spec, name, ns] of [[sameNsc, 'nsm-1', env.nsA], [sameNse, 'nse-1', env.nsB]] as const) {
      await assert.rejects(env.dp.ensure(spec), (e: Error) => e instanceof AlreadyExistsError && e.message.includes(`interface ${name} already exists in netns ${ns}: it belongs to connection ${first.owner}`));
      assert.deepEqual(await ids(), [st.nsc.ifindex, st.nse.ifindex], 'the other pair is the same pair');
      assert.deepEqual(await env.links(env.nsA), ['nsm-1']);
      assert.deepEqual(await env.links(env.nsB), ['nse-1']);
    }
    assert.deepEqual(env.dp.held(), [first.owner]);
    await assertConverged(env, first);
    await assertPings(env, first);
    assert.deepEqual((await env.dp.ensure(first)).actions, [], 'the owner still converges its pair in place');
    // Once it is removed, the name is free.
    await env.dp.remove(first);
    assert.ok((await env.dp.ensure(sameNsc)).nsc.created);
    await assertConverged(env, sameNsc);
  });

  it('two connections ensuring the same names at once: one gets the pair, the other AlreadyExistsError', async (t) => {
    const env = await setup(t, make);
    const a = pairSpec(env, V4);
    const b = renamed(pairSpec(env, V4_OTHER), 'nsm-1', 'nse-1');
    const results = await Promise.allSettled([env.dp.ensure(a), env.dp.ensure(b)]);
    const won = results.map((r) => r.status === 'fulfilled');
    assert.equal(won.filter(Boolean).length, 1, JSON.stringify(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))));
    const loser = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.ok(loser.reason instanceof AlreadyExistsError, String(loser.reason));
    const winner = won[0] ? a : b;
    assert.deepEqual(env.dp.held(), [winner.owner]);
    await assertConverged(env, winner);
    await assertPings(env, winner);
  });

  it('a link of a connection no longer held (an orphan) with the name is replaced', async (t) => {
    const env = await setup(t, make);
    const old = pairSpec(env, V4);
    await env.dp.ensure(old);
    const dp = env.restart(); // holds nothing: `old`'s pair is an orphan to it
    const spec = { ...old, owner: owner() };
    const st = await dp.ensure(spec);
    assert.ok(st.nsc.created);
    assert.ok(st.actions.some((a) => a.startsWith('nsc: delete stale link nsm-1')), st.actions.join(', '));
    await assertConverged(env, spec);
    await assertPings(env, spec);
  });
}

/** Failures leave nothing behind and name the step or the field. */
function failureCases(it: It, make: Make): void {
  it('failure mid-create rolls back and names the step', async (t) => {
    const env = await setup(t, make);
    const base = pairSpec(env, V4);
    // A next hop equal to the end's own address is rejected by the kernel after the link exists.
    const spec: PairSpec = { ...base, nse: { ...base.nse, routes: [...base.nse.routes, { prefix: '10.50.0.0/16', via: '172.16.1.100' }] } };
    await assert.rejects(env.dp.ensure(spec), (e: Error) => e instanceof DataplaneError && e.step === 'add route 10.50.0.0/16 via 172.16.1.100');
    assert.deepEqual(await env.links(env.nsA), []);
    assert.deepEqual(await env.links(env.nsB), []);
    // Nothing left that would stop a correct spec.
    await env.dp.ensure(base);
    await assertConverged(env, base);
  });

  it('invalid spec → InvalidArgumentError naming the field, before any change', async (t) => {
    const env = await setup(t, make);
    const spec = pairSpec(env, V4);
    await assert.rejects(env.dp.ensure({ ...spec, nsc: { ...spec.nsc, addrs: ['172.16.1.999/32'] } }), (e: Error & { field?: string }) => e.name === 'InvalidArgumentError' && e.field === 'nsc.addrs[0]');
    await assert.rejects(env.dp.ensure({ ...spec, owner: 'has space' }), (e: Error & { field?: string }) => e.name === 'InvalidArgumentError' && e.field === 'owner');
    for (const name of ['.', '..']) {
      await assert.rejects(env.dp.ensure({ ...spec, nsc: { ...spec.nsc, name } }), (e: Error & { field?: string }) => e.name === 'InvalidArgumentError' && e.field === 'nsc.name');
    }
    assert.deepEqual(await env.links(env.nsA), []);
  });
}

/** The data plane knows what it holds; a restarted one adopts what is ensured again and collects the rest. */
function inventoryCases(it: It, make: Make): void {
  it('held() lists the owners ensured and not removed; a failed ensure holds nothing; start() forgets', async (t) => {
    const env = await setup(t, make);
    const spec = pairSpec(env, V4);
    assert.deepEqual(env.dp.held(), []);
    await env.dp.ensure(spec);
    await env.dp.ensure(spec);
    assert.deepEqual(env.dp.held(), [spec.owner]);
    await env.dp.remove(spec);
    assert.deepEqual(env.dp.held(), []);
    await env.break.addForeignLink(env.nsA, 'nsm-2');
    const blocked = renamed(pairSpec(env, V6), 'nsm-2', 'nse-2');
    await assert.rejects(env.dp.ensure(blocked), AlreadyExistsError);
    assert.deepEqual(env.dp.held(), []);
    await env.dp.ensure(spec);
    const found = await env.dp.start();
    assert.deepEqual(env.dp.held(), []);
    assert.deepEqual(found.map((l) => [l.owner, l.side]), [[spec.owner, 'nsc'], [spec.owner, 'nse']]);
  });

  it('a restarted data plane finds its links at start, adopts the pair ensured again as it is, removes the orphans', async (t) => {
    const env = await setup(t, make);
    const kept = pairSpec(env, V4);
    const orphan = renamed(pairSpec(env, V6), 'nsm-2', 'nse-2');
    const first = await env.dp.ensure(kept);
    const gone = await env.dp.ensure(orphan);
    const dp = env.restart();
    const found = await dp.start();
    assert.deepEqual(
      sorted(found.map((l) => [l.owner, l.side, l.name, l.ifindex, l.mac])),
      sorted([
        [kept.owner, 'nsc', 'nsm-1', first.nsc.ifindex, first.nsc.mac],
        [kept.owner, 'nse', 'nse-1', first.nse.ifindex, first.nse.mac],
        [orphan.owner, 'nsc', 'nsm-2', gone.nsc.ifindex, gone.nsc.mac],
        [orphan.owner, 'nse', 'nse-2', gone.nse.ifindex, gone.nse.mac],
      ]),
    );
    assert.deepEqual(dp.held(), []);
    const again = await dp.ensure(kept);
    assert.deepEqual(again.actions, []);
    assert.deepEqual([again.nsc.ifindex, again.nsc.mac, again.nse.ifindex, again.nse.mac], [first.nsc.ifindex, first.nsc.mac, first.nse.ifindex, first.nse.mac]);
    assert.deepEqual(dp.held(), [kept.owner]);
    const report = await dp.collectOrphans();
    assert.deepEqual(report.failed, []);
    assert.deepEqual(sorted(report.removed.map((l) => [l.owner, l.side])), sorted([[orphan.owner, 'nsc'], [orphan.owner, 'nse']]));
    assert.deepEqual(await env.links(env.nsA), ['nsm-1']);
    assert.deepEqual(await env.links(env.nsB), ['nse-1']);
    await assertConverged(env, kept);
    await assertPings(env, kept);
    assert.deepEqual(await dp.collectOrphans(), { removed: [], failed: [] });
  });

  it('sweepOrphans removes the links of an owner not held only once two sweeps in a row saw them; the rest stay', async (t) => {
    const env = await setup(t, make);
    await env.break.addForeignLink(env.nsA, 'other0');
    const kept = pairSpec(env, V4);
    const leaked = renamed(pairSpec(env, V6), 'nsm-2', 'nse-2');
    await env.dp.ensure(leaked);
    const dp = env.restart(); // holds nothing of `leaked`: its links are what a cut-short removal leaves
    await dp.ensure(kept);
    assert.deepEqual(await dp.sweepOrphans(), { removed: [], failed: [] }, 'first sighting: nothing removed');
    assert.deepEqual(await env.links(env.nsA), ['nsm-1', 'nsm-2', 'other0']);
    const second = await dp.sweepOrphans();
    assert.deepEqual(second.failed, []);
    assert.deepEqual(sorted(second.removed.map((l) => [l.owner, l.side])), sorted([[leaked.owner, 'nsc'], [leaked.owner, 'nse']]));
    assert.deepEqual(await env.links(env.nsA), ['nsm-1', 'other0']);
    assert.deepEqual(await env.links(env.nsB), ['nse-1']);
    await assertConverged(env, kept);
    assert.deepEqual(await dp.sweepOrphans(), { removed: [], failed: [] });
  });

  it('sweepOrphans leaves a link ensured again, and one that changed, between two sweeps', async (t) => {
    const env = await setup(t, make);
    const adopted = pairSpec(env, V4);
    const replaced = renamed(pairSpec(env, V6), 'nsm-2', 'nse-2');
    await env.dp.ensure(adopted);
    await env.dp.ensure(replaced);
    const dp = env.restart();
    await dp.ensure(renamed(pairSpec(env, V4_OTHER), 'nsm-3', 'nse-3'));
    await dp.sweepOrphans(); // both pairs seen orphaned once
    assert.deepEqual((await dp.ensure(adopted)).actions, []);
    const next: PairSpec = { ...replaced, owner: owner() };
    assert.ok((await env.restart().ensure(next)).nsc.created, 'another instance replaced the pair (new owner, new links)');
    assert.deepEqual(await dp.sweepOrphans(), { removed: [], failed: [] });
    await assertConverged(env, adopted);
    await assertConverged(env, next);
    const third = await dp.sweepOrphans();
    assert.deepEqual(sorted(third.removed.map((l) => [l.owner, l.side])), sorted([[next.owner, 'nsc'], [next.owner, 'nse']]));
    assert.deepEqual(await env.links(env.nsA), ['nsm-1', 'nsm-3']);
  });

  it('collectOrphans leaves alone a link that changed owner since start', async (t) => {
    const env = await setup(t, make);
    const old = pairSpec(env, V4);
    await env.dp.ensure(old);
    const dp = env.restart();
    assert.equal((await dp.start()).length, 2);
    const next: PairSpec = { ...old, owner: owner() };
    assert.ok((await dp.ensure(next)).nsc.created);
    assert.deepEqual((await dp.collectOrphans()).failed, []);
    assert.deepEqual(await env.links(env.nsA), ['nsm-1']);
    await assertConverged(env, next);
  });
}
