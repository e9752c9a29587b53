import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { createLogger, silentLogger } from '../../core/log.js';
import type { PairSpec } from '../types.js';
import { dataPlaneContract, type ContractEnv } from '../contract.js';
import { tunnelContract } from '../contract-tunnel.js';
import { running } from './wireguard.js';
import { linuxDataPlane, ownNetnsUrl, readInterface, watchLinks, NetnsResolver } from './index.js';
import { UNDERLAY_DEVS, addNetns, addNodes, delNetns, delNodes, linkNames, linuxSkipReason, processesIn, sh, type TestNetns } from './testenv.js';

const skip = await linuxSkipReason();
const log = process.env.NSM_TEST_LOG ? createLogger('dataplane-test', 'debug') : silentLogger;

if (skip) {
  console.log(`# linux data plane tests skipped: ${skip}`);
  test('linux data plane', { skip }, () => undefined);
} else {
  dataPlaneContract('linux', async (): Promise<ContractEnv> => {
    const a = await addNetns('a');
    const b = await addNetns('b');
    const byUrl = new Map<string, TestNetns>();
    const env = { nsA: a.inodeUrl, nsB: b.fileUrl };
    byUrl.set(env.nsA, a);
    byUrl.set(env.nsB, b);
    const ns = (url: string) => byUrl.get(url)!;
    const ipn = (url: string, ...args: string[]) => sh('ip', ['-n', ns(url).name, ...args]).then(() => undefined);
    // Inventory looks at this test's netns only: other tests on the machine own links too.
    const scoped = () => linuxDataPlane({ log }, { netns: async () => [a, b].map((n) => ({ url: n.inodeUrl, path: n.path })) });
    return {
      dp: scoped(),
      ...env,
      break: {
        setDown: (u, n) => ipn(u, 'link', 'set', 'dev', n, 'down'),
        deleteLink: (u, n) => ipn(u, 'link', 'del', 'dev', n),
        flushAddrs: (u, n) => ipn(u, 'addr', 'flush', 'dev', n),
        delRoute: (u, n, p) => ipn(u, 'route', 'del', p, 'dev', n),
        addAddr: (u, n, c) => ipn(u, 'addr', 'add', c, 'dev', n),
        addForeignLink: (u, n) => ipn(u, 'link', 'add', n, 'type', 'bridge'),
      },
      inspect: async (u, n) => {
        const s = await readInterface(ns(u).path, n);
        return { exists: s.exists, up: s.up, ifindex: s.ifindex, mac: s.mac, mtu: s.mtu, ...(s.alias !== undefined ? { alias: s.alias } : {}), addrs: s.addrs, routes: s.routes };
      },
      links: (u) => linkNames(ns(u)),
      ping: (u, addr) => sh('ip', ['netns', 'exec', ns(u).name, 'ping', '-c1', '-W1', '-q', addr]).then(() => true, () => false),
      restart: scoped,
      cleanup: () => delNetns(a, b),
    };
  });

  tunnelContract('linux', async () => {
    const nodes = await addNodes();
    const pa = await addNetns('pa');
    const pb = await addNetns('pb');
    const byUrl = new Map<string, TestNetns>([[pa.inodeUrl, pa], [pb.fileUrl, pb]]);
    const ns = (url: string) => byUrl.get(url)!;
    const ipn = (url: string, ...args: string[]) => sh('ip', ['-n', ns(url).name, ...args]).then(() => undefined);
    const refs = (...all: TestNetns[]) => async () => all.map((n) => ({ url: n.inodeUrl, path: n.path }));
    // Each node's data plane: its UDP side in the node netns, its inventory over that node's netns only.
    const nodeA = () => linuxDataPlane({ log }, { tunnelNetns: nodes.a.path, netns: refs(nodes.a, pa) });
    const nodeB = () => linuxDataPlane({ log }, { tunnelNetns: nodes.b.path, netns: refs(nodes.b, pb) });
    const leftovers = async () => {
      const out: string[] = [];
      for (const n of [nodes.a, nodes.b]) {
        for (const l of await linkNames(n)) if (!UNDERLAY_DEVS.includes(l)) out.push(`${n.name}: link ${l}`);
        for (const pid of await processesIn(n)) if (await running(pid)) out.push(`${n.name}: pid ${pid}`);
      }
      return out;
    };
    return {
      dpA: nodeA(),
      dpB: nodeB(),
      ipA: nodes.ipA,
      ipB: nodes.ipB,
      podA: pa.inodeUrl,
      podB: pb.fileUrl,
      break: {
        setDown: (u, n) => ipn(u, 'link', 'set', 'dev', n, 'down'),
        deleteLink: (u, n) => ipn(u, 'link', 'del', 'dev', n),
        flushAddrs: (u, n) => ipn(u, 'addr', 'flush', 'dev', n),
        delRoute: (u, n, p) => ipn(u, 'route', 'del', p, 'dev', n),
        addForeignLink: (u, n) => ipn(u, 'link', 'add', n, 'type', 'bridge'),
      },
      inspect: async (u, n) => {
        const s = await readInterface(ns(u).path, n);
        return { exists: s.exists, up: s.up, ifindex: s.ifindex, mac: s.mac, mtu: s.mtu, ...(s.alias !== undefined ? { alias: s.alias } : {}), addrs: s.addrs, routes: s.routes };
      },
      links: (u) => linkNames(ns(u)),
      leftovers,
      ping: (u, addr) => sh('ip', ['netns', 'exec', ns(u).name, 'ping', '-c1', '-W1', '-q', addr]).then(() => true, () => false),
      restartA: nodeA,
      cleanup: () => delNodes(nodes, pa, pb),
    };
  });

  test('linux: each end resolves the other end by a permanent neighbour entry (no ARP), also after a repair', async (t) => {
    const a = await addNetns('na');
    const b = await addNetns('nb');
    t.after(() => delNetns(a, b));
    const dp = linuxDataPlane({ log }, { netns: async () => [a, b].map((n) => ({ url: n.inodeUrl, path: n.path })) });
    const spec: PairSpec = {
      owner: 'conn-neigh',
      nsc: { netns: a.inodeUrl, name: 'nsm-1', addrs: ['172.16.1.101/32', 'fd00::101/128'], routes: [{ prefix: '172.16.1.100/32' }, { prefix: 'fd00::100/128' }] },
      nse: { netns: b.inodeUrl, name: 'nse-1', addrs: ['172.16.1.100/32', 'fd00::100/128'], routes: [{ prefix: '172.16.1.101/32' }, { prefix: 'fd00::101/128' }] },
    };
    const neigh = async (n: TestNetns, dev: string) =>
      (JSON.parse((await sh('ip', ['-n', n.name, '-j', 'neigh', 'show', 'dev', dev])).stdout) as Array<{ dst: string; lladdr?: string; state?: string[] }>)
        .filter((e) => e.state?.includes('PERMANENT'))
        .map((e) => `${e.dst} ${e.lladdr}`)
        .sort();
    const mac = async (n: TestNetns, dev: string) => (JSON.parse((await sh('ip', ['-n', n.name, '-j', 'link', 'show', 'dev', dev])).stdout) as Array<{ address: string }>)[0]!.address;
    const check = async () => {
      assert.deepEqual(await neigh(a, 'nsm-1'), [`172.16.1.100 ${await mac(b, 'nse-1')}`, `fd00::100 ${await mac(b, 'nse-1')}`]);
      assert.deepEqual(await neigh(b, 'nse-1'), [`172.16.1.101 ${await mac(a, 'nsm-1')}`, `fd00::101 ${await mac(a, 'nsm-1')}`]);
    };
    await dp.ensure(spec, { signal: AbortSignal.timeout(10_000) });
    await check();
    await sh('ip', ['-n', a.name, 'link', 'set', 'dev', 'nsm-1', 'down']); // a link set down loses its entries
    assert.deepEqual(await neigh(a, 'nsm-1'), []);
    await dp.ensure(spec, { signal: AbortSignal.timeout(10_000) });
    await check();
    await dp.remove(spec, { signal: AbortSignal.timeout(10_000) });
  });

  test('linux netns: inode:// and file:// URLs resolve; errors name the URL', async (t) => {
    const a = await addNetns('r');
    t.after(() => delNetns(a));
    const r = new NetnsResolver();
    assert.equal(await r.resolve(a.inodeUrl), a.path);
    assert.equal(await r.resolve(a.inodeUrl), a.path); // cached
    assert.equal(await r.resolve(a.fileUrl), a.path);
    const self = await ownNetnsUrl();
    const s = await stat('/proc/self/ns/net', { bigint: true });
    assert.equal(self, `inode://${s.dev}/${s.ino}`);
    assert.ok((await r.resolve(self)).endsWith('/ns/net') || (await r.resolve(self)).startsWith('/run/netns/'));
    // a netns that does not exist is NotFound naming it; a malformed URL or a file that is no netns is InvalidArgument
    await assert.rejects(r.resolve('inode://4/1'), (e: Error) => e.name === 'NotFoundError' && e.message.includes('inode://4/1'));
    await assert.rejects(r.resolve('file:///run/netns/nsmt-missing'), (e: Error) => e.name === 'NotFoundError' && e.message.includes('nsmt-missing'));
    await assert.rejects(r.resolve('file:///etc/hostname'), (e: Error & { field?: string }) => e.name === 'InvalidArgumentError' && e.field === 'mechanism.parameters.inodeURL' && e.message.includes('file:///etc/hostname'));
    for (const bad of ['netns://x', 'inode://4', 'file://relative', 'file:///%zz', `inode://1/${'9'.repeat(3000)}`]) {
      await assert.rejects(r.resolve(bad), (e: Error) => e.name === 'InvalidArgumentError', bad.slice(0, 40));
    }
    assert.equal(await r.tryResolve('inode://4/1'), undefined);
    assert.equal(await r.tryResolve('netns://x'), undefined);
  });

  test('linux inspect: readInterface and watchLinks see a link going down', async (t) => {
    const a = await addNetns('w');
    t.after(() => delNetns(a));
    assert.equal((await readInterface(a.path, 'nope0')).exists, false);
    await sh('ip', ['-n', a.name, 'link', 'add', 'dum0', 'type', 'bridge']);
    await sh('ip', ['-n', a.name, 'addr', 'add', '10.1.2.3/24', 'dev', 'dum0']);
    await sh('ip', ['-n', a.name, 'link', 'set', 'dum0', 'up']);
    const s = await readInterface(a.path, 'dum0');
    assert.equal(s.exists, true);
    assert.equal(s.up, true);
    assert.deepEqual(s.addrs, ['10.1.2.3/24']);
    const ac = new AbortController();
    const seen: string[] = [];
    const it = watchLinks(a.path, ac.signal);
    const consumer = (async () => {
      for await (const n of it) {
        seen.push(...n.lines);
        if (seen.some((l) => l.includes('dum0') && !l.includes(',UP'))) ac.abort();
      }
    })();
    // Give the monitor a moment to subscribe, then change the link until it reports.
    const deadline = Date.now() + 5000;
    while (!ac.signal.aborted && Date.now() < deadline) {
      await sh('ip', ['-n', a.name, 'link', 'set', 'dum0', 'down']);
      await new Promise((r) => setTimeout(r, 100));
      if (!ac.signal.aborted) await sh('ip', ['-n', a.name, 'link', 'set', 'dum0', 'up']);
    }
    ac.abort();
    await consumer;
    assert.ok(seen.length > 0, 'got monitor lines');
  });
}

if (!skip) {
  test('linux: a scoped data plane (one forwarder) never collects another scope\'s links, which still count as taken names', async (t) => {
    const a = await addNetns('sa');
    const b = await addNetns('sb');
    t.after(() => delNetns(a, b));
    const netns = async () => [a, b].map((n) => ({ url: n.inodeUrl, path: n.path }));
    const spec = (owner: string, n: number): PairSpec => ({
      owner,
      nsc: { netns: a.inodeUrl, name: `nsm-${n}`, addrs: [`172.16.1.${2 * n + 1}/32`], routes: [] },
      nse: { netns: b.inodeUrl, name: `nse-${n}`, addrs: [`172.16.1.${2 * n}/32`], routes: [] },
    });
    const one = linuxDataPlane({ log }, { netns, scope: 'forwarder-one' });
    await one.ensure(spec('conn-1', 1));
    const two = linuxDataPlane({ log }, { netns, scope: 'forwarder-two' });
    assert.deepEqual(await two.start(), [], 'forwarder-two finds none of forwarder-one\'s links');
    await two.collectOrphans();
    await two.sweepOrphans();
    await two.sweepOrphans();
    assert.deepEqual(await linkNames(a), ['nsm-1'], 'forwarder-one\'s link stays');
    await assert.rejects(two.ensure(spec('conn-2', 1)), { name: 'AlreadyExistsError' });
    const again = linuxDataPlane({ log }, { netns, scope: 'forwarder-one' });
    assert.deepEqual((await again.start()).map((l) => [l.owner, l.side]).sort(), [['conn-1', 'nsc'], ['conn-1', 'nse']], 'a restarted forwarder-one finds its own, owners as it gave them');
    await again.remove(spec('conn-1', 1));
    assert.deepEqual(await linkNames(a), []);
  });
}
