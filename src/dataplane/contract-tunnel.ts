/**
 * The data-plane contract for tunnel ends (remote connections, `ensureTunnel`): the node:test suite every
 * `DataPlane` passes for VXLAN and WireGuard (`fake/index.test.ts`, `linux/index.test.ts`). `make()`
 * gives two "nodes" — each a data plane with its own tunnel netns, joined by an underlay — and a pod
 * netns on each; a connection is one end on each node, and pings go from pod to pod through the tunnel.
 * Cases: create, converge, repair in place, parameter change, remove exactly, adoption after a restart,
 * orphan collection, VNI and listen-port collisions, bad input naming the field.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { AlreadyExistsError } from '../core/errors.js';
import type { ContractBreak, ContractLink } from './contract.js';
import type { DataPlane, TunnelSpec } from './types.js';

export interface TunnelContractEnv {
  /** Node A's and node B's data planes, each with its own tunnel netns. */
  dpA: DataPlane;
  dpB: DataPlane;
  /** The nodes' tunnel IPs (on the underlay between the two tunnel netns). */
  ipA: string;
  ipB: string;
  /** A pod netns on node A and one on node B (URLs for specs). */
  podA: string;
  podB: string;
  break: Pick<ContractBreak, 'setDown' | 'deleteLink' | 'flushAddrs' | 'delRoute' | 'addForeignLink'>;
  inspect(ns: string, name: string): Promise<ContractLink>;
  links(ns: string): Promise<string[]>;
  /** What is left in the nodes' tunnel netns besides the underlay: devices, processes (e.g. wireguard-go). */
  leftovers(): Promise<string[]>;
  ping(ns: string, addr: string): Promise<boolean>;
  /** A new data plane for node A (a restarted forwarder) over the same netns. */
  restartA(): DataPlane;
  cleanup(): Promise<void>;
}

type Make = () => Promise<TunnelContractEnv>;
type It = (title: string, fn: (t: TestContext) => Promise<void>) => void;
type Kind = 'vxlan' | 'wireguard';

interface Conn {
  a: TunnelSpec;
  b: TunnelSpec;
}

function key(): { priv: string; pub: string } {
  const k = generateKeyPairSync('x25519');
  const raw = (o: { export(o: { format: 'jwk' }): { d?: string; x?: string } }, f: 'd' | 'x') => Buffer.from(o.export({ format: 'jwk' })[f]!, 'base64url').toString('base64');
  return { priv: raw(k.privateKey, 'd'), pub: raw(k.publicKey, 'x') };
}

/** One connection: node A holds the NSC end, node B the NSE end; `n` picks names, addresses, VNI and ports. */
function conn(env: TunnelContractEnv, kind: Kind, n = 1, mtu?: number): Conn {
  const owner = `conn-${randomBytes(6).toString('hex')}`;
  const vni = 4000 + n;
  const ka = key();
  const kb = key();
  const tun = (side: 'a' | 'b'): TunnelSpec['tunnel'] => {
    const [local, remote] = side === 'a' ? [env.ipA, env.ipB] : [env.ipB, env.ipA];
    if (kind === 'vxlan') return { kind, vni, localIp: local, remoteIp: remote, port: 4789 };
    const [mine, peer] = side === 'a' ? [ka, kb] : [kb, ka];
    return { kind, privateKey: mine.priv, peerPublicKey: peer.pub, localIp: local, listenPort: side === 'a' ? 51820 + n : 52820 + n, remoteIp: remote, remotePort: side === 'a' ? 52820 + n : 51820 + n };
  };
  const ip = (side: number) => `172.16.${40 + n}.${side}`;
  const m = mtu === undefined ? {} : { mtu };
  return {
    a: { owner, side: 'nsc', end: { netns: env.podA, name: `nsm-${n}`, addrs: [`${ip(1)}/32`], routes: [{ prefix: `${ip(2)}/32` }, { prefix: `10.${60 + n}.0.0/16`, via: ip(2) }] }, tunnel: tun('a'), ...m },
    b: { owner, side: 'nse', end: { netns: env.podB, name: `nse-${n}`, addrs: [`${ip(2)}/32`], routes: [{ prefix: `${ip(1)}/32` }] }, tunnel: tun('b'), ...m },
  };
}

function sorted<T>(xs: T[]): T[] {
  return [...xs].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

async function assertEnd(env: TunnelContractEnv, spec: TunnelSpec): Promise<ContractLink> {
  const l = await env.inspect(spec.end.netns, spec.end.name);
  assert.ok(l.exists, `${spec.side} end exists`);
  assert.ok(l.up, `${spec.side} end up`);
  assert.equal(l.alias, `nsm-ts:${spec.owner}:${spec.side}`);
  assert.deepEqual(sorted(l.addrs), sorted(spec.end.addrs), `${spec.side} addrs`);
  assert.deepEqual(sorted(l.routes), sorted(spec.end.routes), `${spec.side} routes`);
  if (spec.mtu) assert.equal(l.mtu, spec.mtu, `${spec.side} mtu`);
  return l;
}

/**
 * Pings both ways. A tunnel may need a moment: WireGuard handshakes on the first packet, and an
 * initiation lost while the other end was being (re)configured is retried after REKEY_TIMEOUT (5 s) —
 * so up to 12 one-second tries.
 */
async function assertPings(env: TunnelContractEnv, c: Conn): Promise<void> {
  const once = async (ns: string, addr: string) => {
    for (let i = 0; i < 12; i++) if (await env.ping(ns, addr)) return true;
    return false;
  };
  assert.ok(await once(env.podA, c.b.end.addrs[0]!.split('/')[0]!), 'ping node B pod from node A pod');
  assert.ok(await once(env.podB, c.a.end.addrs[0]!.split('/')[0]!), 'ping node A pod from node B pod');
}

async function setup(t: TestContext, make: Make): Promise<TunnelContractEnv> {
  const env = await make();
  t.after(() => env.cleanup());
  return env;
}

async function ensureBoth(env: TunnelContractEnv, c: Conn) {
  return Promise.all([env.dpA.ensureTunnel(c.a), env.dpB.ensureTunnel(c.b)]);
}

export function tunnelContract(name: string, make: Make): void {
  const it: It = (title, fn) => void test(`${name} tunnel contract: ${title}`, fn);
  for (const kind of ['vxlan', 'wireguard'] as const) {
    lifecycleCases(it, make, kind);
    inventoryCases(it, make, kind);
  }
  sweepCases(it, make);
  collisionCases(it, make);
}

function lifecycleCases(it: It, make: Make, kind: Kind): void {
  it(`${kind}: fresh create on both nodes, ping across; ensure again changes nothing`, async (t) => {
    const env = await setup(t, make);
    const c = conn(env, kind, 1, 1400);
    const [sa, sb] = await ensureBoth(env, c);
    assert.ok(sa.end.created && sb.end.created);
    assert.ok(sa.end.ifindex > 0 && sa.actions.length > 0);
    await assertEnd(env, c.a);
    await assertEnd(env, c.b);
    await assertPings(env, c);
    const again = await env.dpA.ensureTunnel(c.a);
    assert.deepEqual(again.actions, []);
    assert.deepEqual([again.end.ifindex, again.end.mac, again.end.created], [sa.end.ifindex, sa.end.mac, false]);
    assert.deepEqual(env.dpA.held(), [c.a.owner]);
    if (c.a.tunnel.kind === 'wireguard') assert.equal(await env.dpA.tunnelPrivateKey(c.a.owner), c.a.tunnel.privateKey);
    else assert.equal(await env.dpA.tunnelPrivateKey(c.a.owner), undefined);
  });

  it(`${kind}: a link set down, flushed addresses and a removed route are repaired in place`, async (t) => {
    const env = await setup(t, make);
    const c = conn(env, kind);
    const [first] = await ensureBoth(env, c);
    await env.break.setDown(env.podA, c.a.end.name);
    await env.break.flushAddrs(env.podA, c.a.end.name);
    const st = await env.dpA.ensureTunnel(c.a);
    assert.ok(st.actions.includes('nsc: set up'), st.actions.join(', '));
    assert.ok(st.actions.includes(`nsc: add address ${c.a.end.addrs[0]}`), st.actions.join(', '));
    await env.break.delRoute(env.podA, c.a.end.name, c.a.end.routes[1]!.prefix);
    const st2 = await env.dpA.ensureTunnel(c.a);
    assert.ok(st2.actions.includes(`nsc: add route ${c.a.end.routes[1]!.prefix} via ${c.a.end.routes[1]!.via}`), st2.actions.join(', '));
    assert.deepEqual([st2.end.ifindex, st2.end.mac, st2.end.created], [first.end.ifindex, first.end.mac, false]);
    await assertEnd(env, c.a);
    await assertPings(env, c);
    assert.deepEqual((await env.dpA.ensureTunnel(c.a)).actions, []);
  });

  it(`${kind}: changed tunnel parameters converge; a deleted device is recreated`, async (t) => {
    const env = await setup(t, make);
    const c = conn(env, kind);
    const [first] = await ensureBoth(env, c);
    const next: Conn =
      c.a.tunnel.kind === 'vxlan' && c.b.tunnel.kind === 'vxlan'
        ? { a: { ...c.a, tunnel: { ...c.a.tunnel, vni: 4555 } }, b: { ...c.b, tunnel: { ...c.b.tunnel, vni: 4555 } } }
        : c.a.tunnel.kind === 'wireguard' && c.b.tunnel.kind === 'wireguard'
          ? { a: { ...c.a, tunnel: { ...c.a.tunnel, remotePort: 53999 } }, b: { ...c.b, tunnel: { ...c.b.tunnel, listenPort: 53999 } } }
          : c;
    const [sa, sb] = await ensureBoth(env, next);
    if (kind === 'vxlan') {
      assert.ok(sa.end.created && sa.actions.some((a) => a.includes('vxlan parameters changed')), sa.actions.join(', '));
    } else {
      assert.deepEqual(sa.actions, ['set wireguard peer ' + `${env.ipB}:53999`]);
      assert.deepEqual(sb.actions, ['set wireguard listen port 53999']);
      assert.equal(sa.end.ifindex, first.end.ifindex);
    }
    await assertPings(env, next);
    await env.break.deleteLink(env.podB, next.b.end.name);
    const re = await env.dpB.ensureTunnel(next.b);
    assert.ok(re.end.created, re.actions.join(', '));
    await assertEnd(env, next.b);
    await assertPings(env, next);
  });

  it(`${kind}: remove deletes exactly the end (and what serves it); removing again succeeds`, async (t) => {
    const env = await setup(t, make);
    await env.break.addForeignLink(env.podA, 'other0');
    const c = conn(env, kind);
    await ensureBoth(env, c);
    await env.dpA.removeTunnel({ ...c.a, owner: 'conn-someone-else' });
    assert.ok((await env.inspect(env.podA, c.a.end.name)).exists, 'another owner\'s remove leaves it');
    await env.dpA.removeTunnel(c.a);
    await env.dpB.removeTunnel(c.b);
    assert.deepEqual(await env.links(env.podA), ['other0']);
    assert.deepEqual(await env.links(env.podB), []);
    assert.deepEqual(await env.leftovers(), []);
    assert.deepEqual(env.dpA.held(), []);
    await env.dpA.removeTunnel(c.a);
  });
}

function inventoryCases(it: It, make: Make, kind: Kind): void {
  it(`${kind}: a restarted forwarder finds its tunnel ends, adopts the one ensured again as it is, collects the orphan`, async (t) => {
    const env = await setup(t, make);
    const kept = conn(env, kind, 1);
    const orphan = conn(env, kind, 2);
    const [first] = await ensureBoth(env, kept);
    await ensureBoth(env, orphan);
    const dp = env.restartA();
    const found = await dp.start();
    const port = (c: Conn) => (c.a.tunnel.kind === 'vxlan' ? c.a.tunnel.port : c.a.tunnel.listenPort);
    const vni = (c: Conn) => (c.a.tunnel.kind === 'vxlan' ? { vni: c.a.tunnel.vni } : {});
    assert.deepEqual(
      sorted(found.map((l) => [l.owner, l.side, l.name, l.kind, l.tunnel])),
      sorted(
        [kept, orphan].map((c) => [c.a.owner, 'nsc', c.a.end.name, kind === 'vxlan' ? 'vxlan' : 'tun', { kind, ...vni(c), port: port(c) }]),
      ),
    );
    assert.deepEqual(dp.held(), []);
    const again = await dp.ensureTunnel(kept.a);
    assert.deepEqual(again.actions, []);
    assert.deepEqual([again.end.ifindex, again.end.mac], [first.end.ifindex, first.end.mac]);
    if (kept.a.tunnel.kind === 'wireguard') assert.equal(await dp.tunnelPrivateKey(kept.a.owner), kept.a.tunnel.privateKey);
    const report = await dp.collectOrphans();
    assert.deepEqual(report.failed, []);
    assert.deepEqual(report.removed.map((l) => [l.owner, l.name]), [[orphan.a.owner, orphan.a.end.name]]);
    assert.deepEqual(await env.links(env.podA), [kept.a.end.name]);
    await assertPings(env, kept);
    await dp.removeTunnel(kept.a);
    await env.dpB.removeTunnel(kept.b);
    await env.dpB.removeTunnel(orphan.b);
    assert.deepEqual(await env.leftovers(), []);
  });
}

function sweepCases(it: It, make: Make): void {
  it('sweepOrphans removes a tunnel end of an owner not held once two sweeps saw it; a held one stays', async (t) => {
    const env = await setup(t, make);
    const kept = conn(env, 'wireguard', 1);
    const leaked = conn(env, 'vxlan', 2);
    await env.dpA.ensureTunnel(leaked.a);
    const dp = env.restartA(); // holds nothing of `leaked`: what a cut-short removal leaves
    await dp.ensureTunnel(kept.a);
    assert.deepEqual(await dp.sweepOrphans(), { removed: [], failed: [] }, 'first sighting: nothing removed');
    const second = await dp.sweepOrphans();
    assert.deepEqual(second.failed, []);
    assert.deepEqual(second.removed.map((l) => [l.owner, l.name, l.kind]), [[leaked.a.owner, leaked.a.end.name, 'vxlan']]);
    assert.deepEqual(await env.links(env.podA), [kept.a.end.name]);
    await assertEnd(env, kept.a);
    await dp.removeTunnel(kept.a);
    assert.deepEqual(await env.leftovers(), []);
  });

  it('two connections ensuring the same end name at once: one gets it, the other AlreadyExistsError, nothing else left', async (t) => {
    const env = await setup(t, make);
    const x = conn(env, 'vxlan', 1);
    const y = conn(env, 'wireguard', 2);
    const yy: TunnelSpec = { ...y.a, end: { ...y.a.end, name: x.a.end.name } };
    const results = await Promise.allSettled([env.dpA.ensureTunnel(x.a), env.dpA.ensureTunnel(yy)]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))));
    const loser = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.ok(loser.reason instanceof AlreadyExistsError, String(loser.reason));
    const winner = results[0]!.status === 'fulfilled' ? x.a : yy;
    assert.deepEqual(env.dpA.held(), [winner.owner]);
    await assertEnd(env, winner);
    await env.dpA.removeTunnel(winner);
    assert.deepEqual(await env.links(env.podA), []);
    assert.deepEqual(await env.leftovers(), []);
  });
}

function collisionCases(it: It, make: Make): void {
  it('vxlan: a VNI already used in the tunnel netns → AlreadyExistsError naming the VNI and its connection, nothing left', async (t) => {
    const env = await setup(t, make);
    const first = conn(env, 'vxlan', 1);
    await env.dpA.ensureTunnel(first.a);
    const other = conn(env, 'vxlan', 2);
    const clash: TunnelSpec = { ...other.a, tunnel: { ...first.a.tunnel } };
    await assert.rejects(env.dpA.ensureTunnel(clash), (e: Error) => e instanceof AlreadyExistsError && e.message.includes('VNI 4001') && e.message.includes(first.a.owner));
    assert.deepEqual(await env.links(env.podA), [first.a.end.name]);
    assert.deepEqual(env.dpA.held(), [first.a.owner]);
    await env.dpA.removeTunnel(first.a);
    assert.deepEqual(await env.leftovers(), []);
  });

  it('wireguard: a listen port in use → error naming the port, nothing left', async (t) => {
    const env = await setup(t, make);
    const first = conn(env, 'wireguard', 1);
    await env.dpA.ensureTunnel(first.a);
    const other = conn(env, 'wireguard', 2);
    const port = first.a.tunnel.kind === 'wireguard' ? first.a.tunnel.listenPort : 0;
    const clash: TunnelSpec = other.a.tunnel.kind === 'wireguard' ? { ...other.a, tunnel: { ...other.a.tunnel, listenPort: port } } : other.a;
    await assert.rejects(env.dpA.ensureTunnel(clash), (e: Error) => e.message.includes(`port ${port}`));
    assert.deepEqual(await env.links(env.podA), [first.a.end.name]);
    assert.deepEqual(env.dpA.held(), [first.a.owner]);
    await env.dpA.removeTunnel(first.a);
    assert.deepEqual(await env.leftovers(), []);
  });

  it('a foreign link with the name → AlreadyExistsError, untouched; bad input → InvalidArgumentError naming the field', async (t) => {
    const env = await setup(t, make);
    await env.break.addForeignLink(env.podA, 'nsm-1');
    const before = await env.inspect(env.podA, 'nsm-1');
    const c = conn(env, 'vxlan');
    await assert.rejects(env.dpA.ensureTunnel(c.a), (e: Error) => e instanceof AlreadyExistsError && e.message.includes(`interface nsm-1 already exists in netns ${env.podA}`));
    assert.deepEqual(await env.inspect(env.podA, 'nsm-1'), before);
    const w = conn(env, 'wireguard', 3).a;
    const vx = c.a.tunnel.kind === 'vxlan' ? c.a.tunnel : undefined!;
    const wg = w.tunnel.kind === 'wireguard' ? w.tunnel : undefined!;
    const bad: Array<[string, TunnelSpec]> = [
      ['tunnel.vni', { ...c.a, tunnel: { ...vx, vni: 0 } }],
      ['tunnel.vni', { ...c.a, tunnel: { ...vx, vni: 16_777_216 } }],
      ['tunnel.port', { ...c.a, tunnel: { ...vx, port: 70000 } }],
      ['tunnel.remoteIp', { ...c.a, tunnel: { ...vx, remoteIp: 'fd00::2' } }],
      ['tunnel.localIp', { ...c.a, tunnel: { ...vx, localIp: 'nope' } }],
      ['tunnel.privateKey', { ...w, tunnel: { ...wg, privateKey: 'short' } }],
      ['tunnel.peerPublicKey', { ...w, tunnel: { ...wg, peerPublicKey: Buffer.alloc(31).toString('base64') } }],
      ['tunnel.listenPort', { ...w, tunnel: { ...wg, listenPort: 0 } }],
      ['tunnel.kind', { ...w, tunnel: { ...wg, kind: 'ipsec' } as unknown as TunnelSpec['tunnel'] }],
      ['end.name', { ...c.a, end: { ...c.a.end, name: 'a/b' } }],
      ['end.addrs[0]', { ...c.a, end: { ...c.a.end, addrs: ['1.2.3.999/32'] } }],
      ['owner', { ...c.a, owner: 'has space' }],
      ['side', { ...c.a, side: 'x' as 'nsc' }],
      ['mtu', { ...c.a, mtu: 10 }],
    ];
    for (const [field, spec] of bad) {
      await assert.rejects(env.dpA.ensureTunnel(spec), (e: Error & { field?: string }) => e.name === 'InvalidArgumentError' && e.field === field, field);
    }
    assert.deepEqual(await env.links(env.podA), ['nsm-1']);
    assert.deepEqual(await env.leftovers(), []);
    assert.deepEqual(env.dpA.held(), []);
  });
}
