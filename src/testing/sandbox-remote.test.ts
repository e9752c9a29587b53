/**
 * Tier-2 acceptance of remote connections on the in-process sandbox: a client on node 0 and an endpoint
 * on node 1 (each node: nsmgr on unix + tcp, a forwarder with a tunnel IP on loopback), real components
 * over real gRPC, the sandbox's fake data plane recording the tunnel ends. Checks the 6-segment path,
 * each hop's mechanism, the tunnel parameters both forwarders gave their ends, refresh, Close, a peer
 * answering with a mechanism that was not offered, and a restart of the endpoint's forwarder.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { createClient } from 'nice-grpc';
import { CLS_LOCAL, MECH_KERNEL } from '../api/constants.js';
import { Connection, ConnectionEventType } from '../api/gen/connection.js';
import { NetworkServiceDefinition, type NetworkServiceRequest } from '../api/gen/networkservice.js';
import { ChannelPool, serve } from '../core/transport.js';
import type { TunnelSpec, VxlanTunnelSpec, WireguardTunnelSpec } from '../dataplane/types.js';
import { publicKeyOf } from '../networkservice/mechanisms/wireguard/keys.js';
import { INSECURE } from '../security/tls.js';
import { sandbox, type MonitorRecorder, type Sandbox, type SandboxOptions } from './sandbox.js';

async function mesh(t: TestContext, opts: SandboxOptions = {}): Promise<Sandbox> {
  const sb = await sandbox({ nodes: 2, ...opts });
  t.after(() => sb.close());
  return sb;
}

async function eventually<T>(what: string, fn: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const names = (c: Connection) => c.path!.pathSegments.map((s) => s.name);
const REMOTE_PATH = ['nsc-1', 'nsmgr-0', 'forwarder-0', 'nsmgr-1', 'forwarder-1', 'nse-1'];

/** The mechanism type of the last UPDATE a hop's monitor saw. */
function lastMechanism(rec: MonitorRecorder): string | undefined {
  const updates = rec.events.filter((e) => e.type === ConnectionEventType.UPDATE || e.type === ConnectionEventType.INITIAL_STATE_TRANSFER);
  const conns = updates.flatMap((e) => Object.values(e.connections));
  return conns.at(-1)?.mechanism?.type;
}

/** The one tunnel end a node's data plane holds. */
function onlyTunnel(sb: Sandbox, node: number): TunnelSpec {
  const all = [...sb.nodes[node]!.dataplane.tunnels.values()];
  assert.equal(all.length, 1, `node ${node} holds one tunnel end`);
  return all[0]!;
}

/** Endpoint on node 1 (payload from NSM_PAYLOAD), client on node 0; returns the client's connection. */
async function connectAcross(sb: Sandbox, payload: 'ethernet' | 'ip', clientNode = 0, endpointNode = 1) {
  const nse = await sb.addEndpoint({ name: 'nse-1', services: ['svc'], cidr: '172.16.1.100/31', node: endpointNode, env: { NSM_PAYLOAD: payload } });
  const nsc = await sb.addClient({ name: 'nsc-1', networkServices: ['kernel://svc/nsm-1'], node: clientNode, probe: false });
  const [conn] = await nsc.connected;
  return { nsc, nse, conn: conn! };
}

describe('sandbox: remote connection (two nodes)', () => {
  it('payload ETHERNET: 6 segments, KERNEL → VXLAN → KERNEL, one tunnel end per node with matching parameters', async (t) => {
    const sb = await mesh(t);
    const [n0, n1] = sb.nodes;
    const recs = { fwd0: sb.monitor(n0!.forwarder), nsmgr1: sb.monitor(n1!.nsmgr), fwd1: sb.monitor(n1!.forwarder) };
    const { nsc, nse, conn } = await connectAcross(sb, 'ethernet');
    assert.deepEqual(names(conn), REMOTE_PATH);
    assert.equal(conn.mechanism?.type, MECH_KERNEL);
    assert.equal(conn.payload, 'ETHERNET');
    const nseRec = sb.monitor(nse);
    await eventually('every hop reported its connection', () => lastMechanism(recs.fwd0) && lastMechanism(recs.nsmgr1) && lastMechanism(recs.fwd1) && lastMechanism(nseRec));
    assert.deepEqual([lastMechanism(recs.fwd0), lastMechanism(recs.nsmgr1), lastMechanism(recs.fwd1), lastMechanism(nseRec)], ['KERNEL', 'VXLAN', 'VXLAN', 'KERNEL']);

    const a = onlyTunnel(sb, 0);
    const b = onlyTunnel(sb, 1);
    assert.deepEqual([a.side, a.end.netns, a.end.name, a.end.addrs], ['nsc', nsc.netns, 'nsm-1', ['172.16.1.101/32']]);
    assert.deepEqual([b.side, b.end.netns, b.end.addrs], ['nse', 'fake://nse-1', ['172.16.1.100/32']]);
    const ta = a.tunnel as VxlanTunnelSpec;
    const tb = b.tunnel as VxlanTunnelSpec;
    assert.deepEqual([ta.kind, ta.localIp, ta.remoteIp, ta.port], ['vxlan', '127.0.0.1', '127.0.0.2', 4789]);
    assert.deepEqual([tb.kind, tb.localIp, tb.remoteIp, tb.port, tb.vni], ['vxlan', '127.0.0.2', '127.0.0.1', 4789, ta.vni]);
    assert.equal(ta.vni % 2, 0, 'the client\'s tunnel IP orders first: an even VNI');
    assert.deepEqual([a.mtu, b.mtu, conn.context?.MTU], [1450, 1450, 1450], 'VXLAN over IPv4 costs 50 bytes, on both interfaces');
    assert.deepEqual([n0!.dataplane.creates, n1!.dataplane.creates], [0, 0], 'no veth pair');
    assert.deepEqual([n0!.dataplane.held(), n1!.dataplane.held()], [[a.owner], [b.owner]]);
  });

  it('the other direction picks an odd VNI (client on node 1, endpoint on node 0)', async (t) => {
    const sb = await mesh(t);
    await connectAcross(sb, 'ethernet', 1, 0);
    const vni = (onlyTunnel(sb, 0).tunnel as VxlanTunnelSpec).vni;
    assert.equal(vni % 2, 1, `vni ${vni}`);
    assert.equal((onlyTunnel(sb, 1).tunnel as VxlanTunnelSpec).vni, vni);
  });

  it('payload IP: WIREGUARD; each end holds its private key and the other\'s public key; MTU less 60', async (t) => {
    const sb = await mesh(t);
    const recs = { nsmgr1: sb.monitor(sb.nodes[1]!.nsmgr) };
    const { conn } = await connectAcross(sb, 'ip');
    assert.deepEqual(names(conn), REMOTE_PATH);
    await eventually('nsmgr-1 reported', () => lastMechanism(recs.nsmgr1));
    assert.equal(lastMechanism(recs.nsmgr1), 'WIREGUARD');
    const a = onlyTunnel(sb, 0).tunnel as WireguardTunnelSpec;
    const b = onlyTunnel(sb, 1).tunnel as WireguardTunnelSpec;
    assert.deepEqual([a.kind, b.kind], ['wireguard', 'wireguard']);
    assert.equal(a.peerPublicKey, publicKeyOf(b.privateKey));
    assert.equal(b.peerPublicKey, publicKeyOf(a.privateKey));
    assert.deepEqual([a.localIp, a.remoteIp, a.remotePort, b.listenPort], ['127.0.0.1', '127.0.0.2', b.listenPort, a.remotePort]);
    assert.deepEqual([b.localIp, b.remoteIp, b.remotePort], ['127.0.0.2', '127.0.0.1', a.listenPort]);
    assert.ok(a.listenPort >= 51820 && b.listenPort >= 51820);
    assert.equal(conn.context?.MTU, 1440);
  });

  it('refresh keeps VNI, keys and ports and converges without recreating; Close removes both ends', async (t) => {
    const sb = await mesh(t, { tokenLifetime: '3s' });
    const [n0, n1] = sb.nodes;
    const { nsc } = await connectAcross(sb, 'ip');
    const before = [onlyTunnel(sb, 0), onlyTunnel(sb, 1)].map((s) => JSON.stringify(s));
    await eventually('a refresh reached both forwarders', () => n0!.dataplane.tunnelEnsures.size === 1 && [...n0!.dataplane.tunnelEnsures.values(), ...n1!.dataplane.tunnelEnsures.values()].every((n) => n >= 2), 3000);
    assert.deepEqual([onlyTunnel(sb, 0), onlyTunnel(sb, 1)].map((s) => JSON.stringify(s)), before, 'same keys, ports, IPs');
    assert.deepEqual([n0!.dataplane.tunnelCreates, n1!.dataplane.tunnelCreates], [1, 1]);
    await nsc.stop();
    assert.deepEqual([n0!.dataplane.held(), n1!.dataplane.held(), n0!.dataplane.tunnelRemoves, n1!.dataplane.tunnelRemoves], [[], [], 1, 1]);
  });

  it('VXLAN refresh keeps the VNI', async (t) => {
    const sb = await mesh(t, { tokenLifetime: '3s' });
    await connectAcross(sb, 'ethernet');
    const vni = (onlyTunnel(sb, 1).tunnel as VxlanTunnelSpec).vni;
    await eventually('a refresh at forwarder-1', () => [...sb.nodes[1]!.dataplane.tunnelEnsures.values()].some((n) => n >= 2), 3000);
    assert.deepEqual([(onlyTunnel(sb, 0).tunnel as VxlanTunnelSpec).vni, (onlyTunnel(sb, 1).tunnel as VxlanTunnelSpec).vni], [vni, vni]);
  });

  // The restarts are driven by a plain gRPC client (no heal, no refresh timer): its re-Request is exactly
  // the one a refresh sends, whatever the client's heal would decide about the restart.
  for (const payload of ['ethernet', 'ip'] as const) {
    it(`forwarder-1 restarted (${payload}): a re-Request converges on the same end (same VNI, or same key and port)`, async (t) => {
      const sb = await mesh(t);
      const n1 = sb.nodes[1]!;
      await sb.addEndpoint({ name: 'nse-1', services: ['svc'], cidr: '172.16.1.100/31', node: 1, env: { NSM_PAYLOAD: payload } });
      const raw = rawClient(t, sb, 0);
      const conn = await raw.request(request('raw-1'));
      assert.deepEqual(names(conn), ['raw', 'nsmgr-0', 'forwarder-0', 'nsmgr-1', 'forwarder-1', 'nse-1']);
      const before = onlyTunnel(sb, 1);
      await sb.restart(n1.forwarder);
      assert.deepEqual(n1.dataplane.held(), [], 'a restarted forwarder holds nothing until re-requested');
      const again = await raw.request({ ...request('raw-1'), connection: conn });
      assert.deepEqual(names(again), names(conn));
      assert.deepEqual(onlyTunnel(sb, 1), before, 'same owner, end and tunnel parameters (VNI; WireGuard key read back, port)');
      assert.deepEqual([n1.dataplane.tunnelCreates, n1.dataplane.held()], [1, [before.owner]], 'adopted, not recreated');
      assert.equal(again.mechanism?.type, MECH_KERNEL);
    });
  }

  it('a peer answering with a mechanism that was not offered: INVALID_ARGUMENT naming it, the peer gets a Close, nothing is held', async (t) => {
    const sb = await mesh(t);
    const closes: string[] = [];
    const peer = await serve(['tcp://127.0.0.1:0'], [{
      definition: NetworkServiceDefinition,
      implementation: {
        request: async (r: NetworkServiceRequest) => Connection.fromPartial({ ...r.connection, mechanism: { cls: CLS_LOCAL, type: MECH_KERNEL, parameters: { inodeURL: 'fake://x', name: 'x' } } }),
        close: async (c: Connection) => (closes.push(c.id), {}),
      },
    }], INSECURE);
    t.after(() => peer.stop());
    await sb.registerService({ name: 'svc', payload: 'ETHERNET' });
    await sb.registerEndpoint({ name: 'rogue', networkServiceNames: ['svc'], url: peer.addresses[0] });
    const client = createClient(NetworkServiceDefinition, rawPool(t).get(sb.nodes[0]!.nsmgr.url));
    await assert.rejects(client.request(request('c-rogue')), (e: Error) => /INVALID_ARGUMENT/.test(e.message) && /nse\.mechanism\.type/.test(e.message) && /KERNEL/.test(e.message) && /did not offer/.test(e.message));
    assert.equal(closes.length, 1, 'what the peer set up is closed again');
    assert.deepEqual([sb.nodes[0]!.dataplane.held(), sb.nodes[0]!.dataplane.tunnelCreates], [[], 0]);
  });
});


/** A client's first Request for service `svc`, as the NSC sends it. */
function request(id: string): NetworkServiceRequest {
  return {
    connection: Connection.fromPartial({ id, networkService: 'svc', path: { index: 0, pathSegments: [{ name: 'raw', id }] } }),
    mechanismPreferences: [{ cls: CLS_LOCAL, type: MECH_KERNEL, parameters: { inodeURL: `fake://${id}`, name: 'nsm-1' } }],
  };
}

function rawPool(t: TestContext): ChannelPool {
  const pool = new ChannelPool(INSECURE);
  t.after(() => pool.close());
  return pool;
}

/** Requests through node `node`'s nsmgr, retrying for up to 5 s while a restarted hop comes back. */
function rawClient(t: TestContext, sb: Sandbox, node: number) {
  const client = createClient(NetworkServiceDefinition, rawPool(t).get(sb.nodes[node]!.nsmgr.url));
  return {
    async request(req: NetworkServiceRequest): Promise<Connection> {
      const end = Date.now() + 5000;
      for (;;) {
        try {
          return await client.request(req);
        } catch (err) {
          if (Date.now() > end) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
  };
}
