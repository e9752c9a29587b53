import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Connection, type Mechanism } from '../../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../../api/gen/networkservice.js';
import { networkServiceChain, type NetworkServiceHandler } from '../../../core/chain.js';
import { newContext } from '../../../core/context.js';
import { InvalidArgumentError, ResourceExhaustedError } from '../../../core/errors.js';
import { StateStore } from '../../../core/state.js';
import { CLIENT_URL } from '../../client-url/index.js';
import { VXLAN_VNI, evenVni, randomVni, vxlanClient, vxlanServer } from './index.js';

const GIVEN = { given: ['state'] };
const A = '10.0.0.1';
const B = '10.0.0.2';

function req(id: string, payload: string, mechanism?: Mechanism): NetworkServiceRequest {
  return { connection: Connection.fromPartial({ id, networkService: 'svc', payload, mechanism }), mechanismPreferences: [] };
}

const offered = (id: string, src = A, extra: Record<string, string> = {}): Mechanism => ({ cls: 'REMOTE', type: 'VXLAN', parameters: { src_ip: src, src_port: '4789', MTU: '1450', ...extra } });

/** Answers with the mechanism it got; fails when told to. */
function tail(fail = false): NetworkServiceHandler & { seen: NetworkServiceRequest[] } {
  const seen: NetworkServiceRequest[] = [];
  return {
    seen,
    request: async (r) => {
      seen.push(structuredClone(r));
      if (fail) throw new Error('downstream failed');
      return r.connection!;
    },
    close: async () => undefined,
  };
}

describe('vxlan client', () => {
  it('offers VXLAN with src_ip, src_port and the MTU left by the overlay, for payload ETHERNET only', async () => {
    const t = tail();
    const chain = networkServiceChain('t', [vxlanClient({ tunnelIp: A })], { ...GIVEN, tail: t });
    await chain.request(req('c1', 'ETHERNET'), newContext());
    await chain.request(req('c2', 'IP'), newContext());
    assert.deepEqual(t.seen[0]!.mechanismPreferences, [{ cls: 'REMOTE', type: 'VXLAN', parameters: { src_ip: A, src_port: '4789', MTU: '1450' } }]);
    assert.deepEqual(t.seen[1]!.mechanismPreferences, [], 'no VXLAN for payload IP');
  });

  it('offers nothing to a local next hop; keeps offering on a refresh of a VXLAN connection', async () => {
    const t = tail();
    const chain = networkServiceChain('t', [vxlanClient({ tunnelIp: 'fd00::1' })], { ...GIVEN, tail: t });
    const local = newContext();
    local.state.set(CLIENT_URL, 'unix:///nse.sock');
    await chain.request(req('c1', 'ETHERNET'), local);
    const refresh = req('c2', '', { cls: 'REMOTE', type: 'VXLAN', parameters: { src_ip: 'fd00::1', dst_ip: 'fd00::2', vni: '42' } });
    await chain.request(refresh, newContext());
    assert.deepEqual(t.seen[0]!.mechanismPreferences, []);
    assert.deepEqual(t.seen[1]!.mechanismPreferences.map((p) => p.parameters), [{ src_ip: 'fd00::1', src_port: '4789', MTU: '1430' }]);
    assert.equal(t.seen[1]!.connection!.mechanism!.parameters.vni, '42', 'the VNI of the connection stays');
  });
});

describe('vxlan server', () => {
  it('sets dst_ip, dst_port, the smaller MTU and a VNI of the parity the two IPs give', async () => {
    for (const [src, dst, even] of [[A, B, true], [B, A, false], ['fd00::9', 'fd00::10', true]] as const) {
      const chain = networkServiceChain('t', [vxlanServer({ tunnelIp: dst })], { ...GIVEN, tail: tail() });
      for (let i = 0; i < 20; i++) {
        const r = req(`c${i}`, 'ETHERNET', offered(`c${i}`, src, { MTU: '1400' }));
        const conn = await chain.request(r, newContext());
        const p = conn.mechanism!.parameters;
        const vni = Number(p.vni);
        assert.ok(vni >= 1 && vni <= 0xffffff);
        assert.equal(vni % 2 === 0, even, `${src} → ${dst}: vni ${vni}`);
        assert.deepEqual([p.dst_ip, p.dst_port, p.MTU], [dst, '4789', '1400']);
      }
    }
    assert.equal(evenVni(A, A), true);
    assert.equal(randomVni(true, () => 0), 2, 'never VNI 0');
  });

  it('keeps the VNI per connection across refreshes and takes the one a request carries (restart)', async () => {
    const server = vxlanServer({ tunnelIp: B });
    const chain = networkServiceChain('t', [server], { ...GIVEN, tail: tail() });
    const state = new StateStore();
    const first = await chain.request(req('c1', 'ETHERNET', offered('c1')), newContext({ state }));
    const vni = first.mechanism!.parameters.vni;
    const again = await chain.request(req('c1', 'ETHERNET', offered('c1')), newContext({ state }));
    assert.equal(again.mechanism!.parameters.vni, vni);
    // a restarted forwarder (new element, empty state) keeps what the re-Request carries
    const restarted = networkServiceChain('t', [vxlanServer({ tunnelIp: B })], { ...GIVEN, tail: tail() });
    const state2 = new StateStore();
    const re = await restarted.request(req('c1', 'ETHERNET', offered('c1', A, { vni: vni! })), newContext({ state: state2 }));
    assert.equal(re.mechanism!.parameters.vni, vni);
    assert.equal(state2.get(VXLAN_VNI), Number(vni));
  });

  it('never gives a VNI it holds with that peer (nor a reserved one) to another connection; Close and a failed first Request give it back', async () => {
    let draw = 0;
    const draws = [5, 5, 5, 6, 7, 7]; // halves: 5 → vni 10, 6 → 12, 7 → 14
    const rnd = () => draws[draw++ % draws.length]!;
    const server = vxlanServer({ tunnelIp: B, randomInt: rnd }, { reservedVnis: [12] });
    const ok = networkServiceChain('t', [server], { ...GIVEN, tail: tail() });
    const s1 = new StateStore();
    const c1 = await ok.request(req('c1', 'ETHERNET', offered('c1')), newContext({ state: s1 }));
    const c2 = await ok.request(req('c2', 'ETHERNET', offered('c2')), newContext());
    assert.deepEqual([c1.mechanism!.parameters.vni, c2.mechanism!.parameters.vni], ['10', '14'], '10 is held, 12 reserved');
    await assert.rejects(ok.request(req('c3', 'ETHERNET', offered('c3', A, { vni: '10' })), newContext()), (e: Error) => e instanceof InvalidArgumentError && e.field === 'VXLAN.parameters.vni');
    await ok.close(c1, newContext({ state: s1 }));
    const failing = networkServiceChain('t', [server], { ...GIVEN, tail: tail(true) });
    draw = 0;
    await assert.rejects(failing.request(req('c4', 'ETHERNET', offered('c4')), newContext()), /downstream failed/);
    draw = 0;
    const c5 = await ok.request(req('c5', 'ETHERNET', offered('c5')), newContext());
    assert.equal(c5.mechanism!.parameters.vni, '10', 'freed by Close, not kept by the failed c4');
  });

  it('refuses a bad peer: names the parameter; exhaustion is ResourceExhausted', async () => {
    const chain = networkServiceChain('t', [vxlanServer({ tunnelIp: B })], { ...GIVEN, tail: tail() });
    const table: Array<[Record<string, string>, string]> = [
      [{ src_ip: '' }, 'VXLAN.parameters.src_ip'],
      [{ src_ip: 'fd00::1' }, 'VXLAN.parameters.src_ip'],
      [{ src_port: '4790' }, 'VXLAN.parameters.src_port'],
      [{ vni: '16777216' }, 'VXLAN.parameters.vni'],
      [{ MTU: 'big' }, 'VXLAN.parameters.MTU'],
    ];
    for (const [params, field] of table) {
      await assert.rejects(chain.request(req('c', 'ETHERNET', offered('c', A, params)), newContext()), (e: Error) => e instanceof InvalidArgumentError && e.field === field, field);
    }
    const stuck = networkServiceChain('t', [vxlanServer({ tunnelIp: B, randomInt: () => 3 })], { ...GIVEN, tail: tail() });
    await stuck.request(req('c1', 'ETHERNET', offered('c1')), newContext());
    await assert.rejects(stuck.request(req('c2', 'ETHERNET', offered('c2')), newContext()), ResourceExhaustedError);
  });
});
