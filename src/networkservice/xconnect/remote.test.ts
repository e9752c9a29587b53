/**
 * xconnect's two remote shapes with the real mechanism elements around it: forwarder-A (client's node,
 * KERNEL from the NSC, VXLAN/WIREGUARD to a tcp next hop) and forwarder-B (VXLAN/WIREGUARD from the
 * peer, KERNEL to the local NSE), on the sandbox's recording data plane.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Connection, type Mechanism } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { networkServiceChain, passThrough, type NetworkServiceHandler } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { InvalidArgumentError } from '../../core/errors.js';
import type { VxlanTunnelSpec, WireguardTunnelSpec } from '../../dataplane/types.js';
import { SandboxDataPlane } from '../../testing/sandbox.js';
import { beginServer } from '../begin/index.js';
import { clientUrl } from '../client-url/index.js';
import { filterMechanismsClient } from '../mechanisms/filter-mechanisms/index.js';
import { mechanismsClient, mechanismsServer } from '../mechanisms/index.js';
import { kernelMechanismClient } from '../mechanisms/kernel/index.js';
import { mechanismTranslationClient } from '../mechanisms/mechanism-translation/index.js';
import { vxlanClient, vxlanServer } from '../mechanisms/vxlan/index.js';
import { PortPool, generateKeyPair, publicKeyOf, wireguardClient, wireguardServer } from '../mechanisms/wireguard/index.js';
import { xconnectServer } from './index.js';

const A = '10.0.0.1';
const B = '10.0.0.2';
const IPS = { srcIpAddrs: ['172.16.1.101/32'], dstIpAddrs: ['172.16.1.100/32'] };
const noKeys = { tunnelPrivateKey: async () => undefined };

/** The next hop: answers with `answer(request)` as its mechanism; records Closes. */
function peer(answer: (r: NetworkServiceRequest) => Mechanism): NetworkServiceHandler & { closes: string[]; seen: NetworkServiceRequest[] } {
  const closes: string[] = [];
  const seen: NetworkServiceRequest[] = [];
  return {
    closes,
    seen,
    request: async (r) => (seen.push(structuredClone(r)), Connection.fromPartial({ ...r.connection, mechanism: answer(r) })),
    close: async (c) => void closes.push(c.id),
  };
}

/** forwarder-A: begin → mechanisms{KERNEL} → xconnect → mechanism-translation → tcp next hop → mechanisms client → filter. */
function forwarderA(dp: SandboxDataPlane, next: NetworkServiceHandler, ports = new PortPool()) {
  return networkServiceChain('fwd-a', [
    beginServer(),
    mechanismsServer({ KERNEL: passThrough('kernel') }),
    xconnectServer({ dataplane: dp }),
    clientUrl('tcp://10.0.0.2:5001'),
    mechanismTranslationClient(),
    mechanismsClient({ KERNEL: kernelMechanismClient({}, { generateName: false }), VXLAN: vxlanClient({ tunnelIp: A }), WIREGUARD: wireguardClient({ tunnelIp: A, dataplane: noKeys, ports }) }),
    filterMechanismsClient(),
  ], { tail: next });
}

function fromNsc(id: string, payload: string): NetworkServiceRequest {
  return {
    connection: Connection.fromPartial({ id, networkService: 'svc', payload, context: { ipContext: IPS } }),
    mechanismPreferences: [{ cls: 'LOCAL', type: 'KERNEL', parameters: { inodeURL: 'fake://nsc', name: 'nsm-1' } }],
  };
}

/** forwarder-B's answer to an offered VXLAN preference (what vxlanServer would set). */
const vxlanAnswer = (extra: Record<string, string> = {}) => (r: NetworkServiceRequest): Mechanism => {
  const pref = r.mechanismPreferences.find((m) => m.type === 'VXLAN')!;
  return { ...pref, parameters: { ...pref.parameters, dst_ip: B, dst_port: '4789', vni: '1000', MTU: '1400', ...extra } };
};

describe('xconnect: remote shapes', () => {
  it('forwarder-A: KERNEL from the NSC, VXLAN to a tcp next hop → the client\'s tunnel end; Close removes it', async () => {
    const dp = new SandboxDataPlane();
    const next = peer(vxlanAnswer());
    const chain = forwarderA(dp, next);
    const conn = await chain.request(fromNsc('a1', 'ETHERNET'), newContext());
    assert.deepEqual(next.seen[0]!.mechanismPreferences.map((m) => `${m.cls}/${m.type}`), ['REMOTE/VXLAN'], 'only REMOTE to tcp');
    const spec = dp.tunnels.get('a1')!;
    assert.deepEqual([spec.side, spec.end.netns, spec.end.name, spec.end.addrs, spec.mtu], ['nsc', 'fake://nsc', 'nsm-1', ['172.16.1.101/32'], 1400]);
    assert.deepEqual(spec.tunnel as VxlanTunnelSpec, { kind: 'vxlan', vni: 1000, localIp: A, remoteIp: B, port: 4789 });
    assert.equal(conn.context?.MTU, 1400, 'the NSC interface accounts for the overlay');
    assert.equal(conn.mechanism?.type, 'KERNEL', 'the NSC sees its own mechanism');
    await chain.close(conn, newContext());
    assert.deepEqual([dp.held(), next.closes], [[], ['a1']]);
  });

  it('forwarder-A with WIREGUARD: its end carries its own key and port and the peer\'s', async () => {
    const dp = new SandboxDataPlane();
    const peerKey = generateKeyPair();
    const next = peer((r) => {
      const pref = r.mechanismPreferences.find((m) => m.type === 'WIREGUARD')!;
      return { ...pref, parameters: { ...pref.parameters, dst_ip: B, dst_port: '51830', dst_public_key: peerKey.publicKey } };
    });
    await forwarderA(dp, next).request(fromNsc('a2', 'IP'), newContext());
    const t = dp.tunnels.get('a2')!.tunnel as WireguardTunnelSpec;
    const offered = next.seen[0]!.mechanismPreferences[0]!.parameters;
    assert.deepEqual([t.listenPort, t.remotePort, t.peerPublicKey, t.localIp, t.remoteIp], [51820, 51830, peerKey.publicKey, A, B]);
    assert.equal(offered.src_public_key, publicKeyOf(t.privateKey));
    assert.equal(dp.tunnels.get('a2')!.mtu, 1440);
  });

  it('an answer with a mechanism not offered, or a bad parameter: InvalidArgument naming it, downstream closed, nothing held', async () => {
    const table: Array<[(r: NetworkServiceRequest) => Mechanism, string]> = [
      [() => ({ cls: 'REMOTE', type: 'WIREGUARD', parameters: {} }), 'nse.mechanism.type'],
      [() => ({ cls: 'LOCAL', type: 'KERNEL', parameters: { inodeURL: 'fake://x', name: 'x' } }), 'nse.mechanism.type'],
      [vxlanAnswer({ vni: '' }), 'VXLAN.parameters.vni'],
      [vxlanAnswer({ dst_ip: 'somewhere' }), 'VXLAN.parameters.dst_ip'],
      [vxlanAnswer({ dst_port: '4790' }), 'VXLAN.parameters.dst_port'],
    ];
    for (const [answer, field] of table) {
      const dp = new SandboxDataPlane();
      const ports = new PortPool();
      const next = peer(answer);
      await assert.rejects(forwarderA(dp, next, ports).request(fromNsc('a3', 'ETHERNET'), newContext()), (e: Error) => e instanceof InvalidArgumentError && e.field === field, field);
      assert.deepEqual([dp.held(), dp.tunnelCreates, next.closes, ports.inUse], [[], 0, ['a3'], 0], field);
    }
  });

  it('forwarder-B: VXLAN from the peer, KERNEL to the local NSE → the endpoint\'s tunnel end with the VNI it chose', async () => {
    const dp = new SandboxDataPlane();
    const nse = peer(() => ({ cls: 'LOCAL', type: 'KERNEL', parameters: { inodeURL: 'fake://nse', name: 'svc-abc' } }));
    const chain = networkServiceChain('fwd-b', [
      beginServer(),
      mechanismsServer({ KERNEL: passThrough('kernel'), VXLAN: vxlanServer({ tunnelIp: B }), WIREGUARD: wireguardServer({ tunnelIp: B, dataplane: noKeys, ports: new PortPool() }) }),
      xconnectServer({ dataplane: dp }),
      clientUrl('unix:///run/nse.sock'),
      mechanismTranslationClient(),
      mechanismsClient({ KERNEL: kernelMechanismClient({}, { generateName: false }), VXLAN: vxlanClient({ tunnelIp: B }) }),
      filterMechanismsClient(),
    ], { tail: nse });
    const req: NetworkServiceRequest = {
      connection: Connection.fromPartial({ id: 'b1', networkService: 'svc', payload: 'ETHERNET', context: { ipContext: IPS } }),
      mechanismPreferences: [{ cls: 'REMOTE', type: 'VXLAN', parameters: { src_ip: A, src_port: '4789', MTU: '1450' } }],
    };
    const conn = await chain.request(req, newContext());
    assert.deepEqual(nse.seen[0]!.mechanismPreferences.map((m) => `${m.cls}/${m.type}`), ['LOCAL/KERNEL'], 'only LOCAL to unix');
    const spec = dp.tunnels.get('b1')!;
    const t = spec.tunnel as VxlanTunnelSpec;
    assert.deepEqual([spec.side, spec.end.netns, spec.end.name, spec.end.addrs, spec.mtu], ['nse', 'fake://nse', 'svc-abc', ['172.16.1.100/32'], 1450]);
    assert.deepEqual([t.localIp, t.remoteIp, t.port, t.vni % 2, String(t.vni)], [B, A, 4789, 0, conn.mechanism!.parameters.vni]);
    assert.equal(conn.mechanism!.parameters.dst_ip, B);
  });
});
