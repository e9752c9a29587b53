import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AlreadyExistsError } from '../../core/errors.js';
import { normalizeSpec, type WantPair } from '../spec.js';
import { PING_GROUP_RANGE } from './ip.js';
import { planCreate, planEnsure, planRemove } from './plan.js';
import { endMac, type KLink, type NetnsState } from './state.js';

const want: WantPair = normalizeSpec({
  owner: 'c1',
  nsc: { netns: 'a', name: 'nsm-1', addrs: ['172.16.1.101/32'], routes: [{ prefix: '172.16.1.100/32' }] },
  nse: { netns: 'b', name: 'nse-1', addrs: ['172.16.1.100/32'], routes: [{ prefix: '172.16.1.101/32' }] },
});

function link(name: string, ifindex: number, peerIfindex: number, alias: string | undefined, addr: string): KLink {
  const l: KLink = { ifindex, name, flags: ['UP', 'LOWER_UP'], up: true, carrier: true, operstate: 'UP', mtu: 1500, mac: '02:00:00:00:00:0' + ifindex, kind: 'veth', peerIfindex, addrs: [] };
  if (alias !== undefined) l.alias = alias;
  const [local, len] = addr.split('/');
  l.addrs.push({ family: 4, local: local!, prefixlen: Number(len), cidr: addr, scope: 'global' });
  return l;
}

function netns(l: KLink | undefined, routePrefix: string, pingGroupRange = PING_GROUP_RANGE): NetnsState {
  return {
    links: new Map(l ? [[l.name, l]] : []),
    routes: l ? [{ family: 4, prefix: routePrefix, dev: l.name, protocol: 'boot', scope: 'link', onlink: false }] : [],
    pingGroupRange,
  };
}

/** No other connection is live (held or busy). */
const none = () => false;

const healthyNsc = link('nsm-1', 5, 7, 'nsm-ts:c1:nsc', '172.16.1.101/32');
const healthyNse = link('nse-1', 7, 5, 'nsm-ts:c1:nse', '172.16.1.100/32');

describe('linux plan', () => {
  it('a fresh create: the NSE batch creates the pair first and both batches end with a read', () => {
    const p = planCreate(want, '/run/netns/a');
    const mac = { nsc: endMac(want.owner, 'nsc'), nse: endMac(want.owner, 'nse') };
    assert.equal(p.nse[0]!.cmd, `link add nse-1 address ${mac.nse} type veth peer name nsm-1 address ${mac.nsc} netns /run/netns/a`);
    // Each end resolves the other's address without ARP.
    assert.ok(p.nse.some((l) => l.cmd === `neigh replace 172.16.1.101 lladdr ${mac.nsc} dev nse-1 nud permanent`));
    assert.ok(p.nsc.some((l) => l.cmd === `neigh replace 172.16.1.100 lladdr ${mac.nse} dev nsm-1 nud permanent`));
    assert.equal(p.nse.at(-1)!.step, 'read link');
    assert.equal(p.nsc.at(-1)!.step, 'read link');
    assert.equal(p.actions[0], 'create veth nsm-1/nse-1');
    assert.ok(p.actions.includes('nsc: add address 172.16.1.101/32'));
  });

  it('end MACs: locally administered unicast, stable per owner and side', () => {
    assert.match(endMac('conn-1', 'nsc'), /^02(:[0-9a-f]{2}){5}$/);
    assert.equal(endMac('conn-1', 'nsc'), endMac('conn-1', 'nsc'));
    assert.notEqual(endMac('conn-1', 'nsc'), endMac('conn-1', 'nse'));
  });

  it('a healthy pair converges with no lines and no actions', () => {
    const p = planEnsure(want, netns(healthyNsc, '172.16.1.100/32'), netns(healthyNse, '172.16.1.101/32'), none);
    assert.equal(p.kind, 'converge');
    if (p.kind !== 'converge') return;
    assert.deepEqual([p.nsc.lines, p.nse.lines, p.actions], [[], [], []]);
  });

  it('table: what planEnsure decides', () => {
    const down = { ...healthyNsc, up: false };
    const otherOwner = { ...healthyNsc, alias: 'nsm-ts:c0:nsc' };
    const unpaired = { ...healthyNsc, peerIfindex: 9 };
    const cases: Array<[string, KLink | undefined, KLink | undefined, string, string[]]> = [
      ['link down → set up in place', down, healthyNse, 'converge', ['nsc: set up']],
      ['link of another owner not live (an orphan) → recreate', otherOwner, healthyNse, 'recreate', ['nsc of c0', 'nse']],
      ['not each other\'s peer → recreate', unpaired, healthyNse, 'recreate', ['nsc', 'nse']],
      ['NSC end missing → recreate, delete the NSE end', undefined, healthyNse, 'recreate', ['nse']],
    ];
    for (const [title, a, b, kind, detail] of cases) {
      const p = planEnsure(want, netns(a, '172.16.1.100/32'), netns(b, '172.16.1.101/32'), none);
      assert.equal(p.kind, kind, title);
      const got = p.kind === 'converge' ? p.actions : p.stale.map((s) => `${s.side}${s.owner === want.owner ? '' : ` of ${s.owner}`}`);
      assert.deepEqual(got, detail, title);
    }
  });

  it('ping_group_range is an action of its own', () => {
    const p = planEnsure(want, netns(healthyNsc, '172.16.1.100/32', '1 0'), netns(healthyNse, '172.16.1.101/32'), none);
    assert.ok(p.kind === 'converge' && p.nsc.pingGroupRange && !p.nse.pingGroupRange);
    assert.deepEqual(p.kind === 'converge' ? p.actions : [], ['nsc: set ping_group_range']);
  });

  it('a foreign link with a wanted name is refused before anything is planned', () => {
    const foreign = { ...healthyNse, alias: undefined, kind: 'bridge' };
    assert.throws(
      () => planEnsure(want, netns(healthyNsc, '172.16.1.100/32'), netns(foreign, '172.16.1.101/32'), none),
      (e: Error) => e instanceof AlreadyExistsError && /nse interface nse-1 already exists in netns b and is not owned by nsm-ts/.test(e.message),
    );
  });

  it('a link of another live connection with a wanted name, either end, is refused naming the owner', () => {
    const live = (o: string) => o === 'c0';
    for (const [side, a, b] of [
      ['nsc', { ...healthyNsc, alias: 'nsm-ts:c0:nsc' }, undefined],
      ['nse', undefined, { ...healthyNse, alias: 'nsm-ts:c0:nse' }],
    ] as const) {
      assert.throws(
        () => planEnsure(want, netns(a, '172.16.1.100/32'), netns(b, '172.16.1.101/32'), live),
        (e: Error) => e instanceof AlreadyExistsError && e.message.includes(`${side} interface ${side === 'nsc' ? 'nsm-1' : 'nse-1'} already exists in netns ${side === 'nsc' ? 'a' : 'b'}: it belongs to connection c0`),
        side,
      );
    }
  });

  it('planRemove: the NSE end goes with its peer; only links of the owner are deleted', () => {
    assert.deepEqual(planRemove('c1', healthyNsc, healthyNse), { nsc: true, nse: false });
    assert.deepEqual(planRemove('c1', undefined, healthyNse), { nsc: false, nse: true });
    assert.deepEqual(planRemove('c1', { ...healthyNsc, peerIfindex: 9 }, healthyNse), { nsc: true, nse: true });
    assert.deepEqual(planRemove('c2', healthyNsc, healthyNse), { nsc: false, nse: false });
  });
});
