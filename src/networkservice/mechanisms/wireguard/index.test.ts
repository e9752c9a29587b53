import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { diffieHellman, createPrivateKey, createPublicKey } from 'node:crypto';
import { Connection, type Mechanism } from '../../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../../api/gen/networkservice.js';
import { networkServiceChain, type NetworkServiceHandler } from '../../../core/chain.js';
import { newContext } from '../../../core/context.js';
import { InvalidArgumentError, ResourceExhaustedError } from '../../../core/errors.js';
import { StateStore } from '../../../core/state.js';
import { CLIENT_URL } from '../../client-url/index.js';
import { PortPool, WIREGUARD_CLIENT_END, WIREGUARD_SERVER_END, checkKey, generateKeyPair, publicKeyOf, wireguardClient, wireguardServer, type WireguardEnd } from './index.js';

const GIVEN = { given: ['state'] };
const A = '10.0.0.1';
const B = '10.0.0.2';

/** A data plane that still has the private keys of some owners (as after a forwarder restart). */
const keptKeys = (keys: Record<string, string> = {}) => ({ tunnelPrivateKey: async (owner: string) => keys[owner] });

function req(id: string, payload: string, mechanism?: Mechanism): NetworkServiceRequest {
  return { connection: Connection.fromPartial({ id, networkService: 'svc', payload, mechanism }), mechanismPreferences: [] };
}

/** Answers with `answer(request)`'s mechanism, or the request's own. */
function tail(answer?: (r: NetworkServiceRequest) => Mechanism | undefined, fail = false): NetworkServiceHandler & { seen: NetworkServiceRequest[] } {
  const seen: NetworkServiceRequest[] = [];
  return {
    seen,
    request: async (r) => {
      seen.push(structuredClone(r));
      if (fail) throw new Error('downstream failed');
      return { ...r.connection!, mechanism: answer ? answer(r) : r.connection!.mechanism };
    },
    close: async () => undefined,
  };
}

/** Shared secret of a private key and a peer public key, both WireGuard base64. */
function dh(priv: string, pub: string): string {
  const der = (b: string, prefix: string) => Buffer.concat([Buffer.from(prefix, 'hex'), Buffer.from(b, 'base64')]);
  const privateKey = createPrivateKey({ key: der(priv, '302e020100300506032b656e04220420'), format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey({ key: der(pub, '302a300506032b656e032100'), format: 'der', type: 'spki' });
  return diffieHellman({ privateKey, publicKey }).toString('base64');
}

describe('wireguard keys', () => {
  it('generates X25519 pairs in WireGuard base64; the public key follows from the private one; DH agrees', () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    for (const k of [a.privateKey, a.publicKey]) assert.equal(checkKey('k', k), k);
    assert.equal(publicKeyOf(a.privateKey), a.publicKey);
    assert.notEqual(a.privateKey, b.privateKey);
    assert.equal(dh(a.privateKey, b.publicKey), dh(b.privateKey, a.publicKey));
  });

  it('refuses what is not a key, naming the field', () => {
    for (const bad of ['', 'abc', 'A'.repeat(44), `${'A'.repeat(42)}B=`, Buffer.alloc(31).toString('base64')]) {
      assert.throws(() => checkKey('WIREGUARD.parameters.dst_public_key', bad), (e: Error) => e instanceof InvalidArgumentError && e.field === 'WIREGUARD.parameters.dst_public_key', bad);
    }
  });
});

describe('port pool', () => {
  it('gives ports from 51820 up, a preferred one when free, and refuses past its bound', () => {
    const pool = new PortPool(51820, 3);
    assert.deepEqual([pool.take(), pool.take(51822), pool.take(51822)], [51820, 51822, 51821]);
    assert.throws(() => pool.take(), ResourceExhaustedError);
    pool.release(51821);
    assert.equal(pool.take(), 51821);
    assert.throws(() => new PortPool(65535, 2), (e: Error) => e instanceof InvalidArgumentError && e.field === 'count');
  });
});

describe('wireguard client and server', () => {
  it('client offers its key and port for payload IP; server answers with its own; the ends hold matching keys', async () => {
    const clientPorts = new PortPool(51820, 4);
    const serverPorts = new PortPool(51820, 4);
    const server = networkServiceChain('srv', [wireguardServer({ tunnelIp: B, dataplane: keptKeys(), ports: serverPorts })], { ...GIVEN, tail: tail() });
    const serverState = new StateStore();
    // forwarder-B: selects the offered preference (as mechanismsServer does) and answers through its chain
    const clientTail: NetworkServiceHandler = {
      request: async (r) => {
        const pref = r.mechanismPreferences[0]!;
        const c = await server.request(req('b1', 'IP', { ...pref, parameters: { ...pref.parameters } }), newContext({ state: serverState }));
        return { ...r.connection!, mechanism: c.mechanism };
      },
      close: async () => undefined,
    };
    const client = networkServiceChain('cli', [wireguardClient({ tunnelIp: A, dataplane: keptKeys(), ports: clientPorts })], { ...GIVEN, tail: clientTail });
    const clientState = new StateStore();
    const conn = await client.request(req('a1', 'IP'), newContext({ state: clientState }));
    const p = conn.mechanism!.parameters;
    const mine = clientState.get(WIREGUARD_CLIENT_END)!;
    const theirs = serverState.get(WIREGUARD_SERVER_END)!;
    assert.deepEqual([p.src_ip, p.src_port, p.src_public_key, p.MTU], [A, '51820', mine.publicKey, '1440']);
    assert.deepEqual([p.dst_ip, p.dst_port, p.dst_public_key], [B, '51820', theirs.publicKey]);
    assert.equal(dh(mine.privateKey, p.dst_public_key!), dh(theirs.privateKey, p.src_public_key!), 'both ends derive the same secret');
    // a refresh keeps keys and ports
    const again = await client.request(req('a1', 'IP', conn.mechanism), newContext({ state: clientState }));
    assert.deepEqual(again.mechanism!.parameters, p);
    assert.deepEqual([clientPorts.inUse, serverPorts.inUse], [1, 1]);
    await client.close(conn, newContext({ state: clientState }));
    await server.close(Connection.fromPartial({ id: 'b1', mechanism: conn.mechanism }), newContext({ state: serverState }));
    assert.deepEqual([clientPorts.inUse, serverPorts.inUse, clientState.get(WIREGUARD_CLIENT_END)], [0, 0, undefined]);
  });

  it('client: nothing for payload ETHERNET or a local next hop; an answer with another mechanism or a failure gives the port back', async () => {
    const ports = new PortPool(51820, 4);
    const deps = { tunnelIp: A, dataplane: keptKeys(), ports };
    const kernel = (): Mechanism => ({ cls: 'LOCAL', type: 'KERNEL', parameters: {} });
    const t = tail(kernel);
    const chain = networkServiceChain('t', [wireguardClient(deps)], { ...GIVEN, tail: t });
    await chain.request(req('e', 'ETHERNET'), newContext());
    const local = newContext();
    local.state.set(CLIENT_URL, 'unix:///nse.sock');
    await chain.request(req('l', 'IP'), local);
    assert.deepEqual(t.seen.map((r) => r.mechanismPreferences.length), [0, 0]);
    const s = new StateStore();
    await chain.request(req('k', 'IP'), newContext({ state: s }));
    assert.deepEqual([ports.inUse, s.get(WIREGUARD_CLIENT_END)], [0, undefined]);
    const failing = networkServiceChain('t', [wireguardClient(deps)], { ...GIVEN, tail: tail(undefined, true) });
    await assert.rejects(failing.request(req('f', 'IP'), newContext()), /downstream failed/);
    assert.equal(ports.inUse, 0);
  });

  it('a restarted forwarder reads the private key back from the data plane instead of making a new one', async () => {
    const kept = generateKeyPair();
    const ports = new PortPool(51820, 4);
    const server = networkServiceChain('srv', [wireguardServer({ tunnelIp: B, dataplane: keptKeys({ b1: kept.privateKey }), ports })], { ...GIVEN, tail: tail() });
    const peer = generateKeyPair();
    const offer: Mechanism = { cls: 'REMOTE', type: 'WIREGUARD', parameters: { src_ip: A, src_port: '51820', src_public_key: peer.publicKey, dst_port: '51823' } };
    const state = new StateStore();
    const conn = await server.request(req('b1', 'IP', offer), newContext({ state }));
    assert.equal(conn.mechanism!.parameters.dst_public_key, kept.publicKey);
    assert.equal(conn.mechanism!.parameters.dst_port, '51823', 'the port the connection had, when free');
    assert.deepEqual((state.get(WIREGUARD_SERVER_END) as WireguardEnd).privateKey, kept.privateKey);
  });

  it('server refuses a bad offer naming the parameter, and holds nothing', async () => {
    const ports = new PortPool(51820, 4);
    const chain = networkServiceChain('t', [wireguardServer({ tunnelIp: B, dataplane: keptKeys(), ports })], { ...GIVEN, tail: tail() });
    const good = { src_ip: A, src_port: '51820', src_public_key: generateKeyPair().publicKey };
    const table: Array<[Record<string, string>, string]> = [
      [{ src_ip: 'x' }, 'WIREGUARD.parameters.src_ip'],
      [{ src_ip: 'fd00::1' }, 'WIREGUARD.parameters.src_ip'],
      [{ src_port: '' }, 'WIREGUARD.parameters.src_port'],
      [{ src_public_key: 'short' }, 'WIREGUARD.parameters.src_public_key'],
    ];
    for (const [params, field] of table) {
      const m: Mechanism = { cls: 'REMOTE', type: 'WIREGUARD', parameters: { ...good, ...params } };
      await assert.rejects(chain.request(req('b', 'IP', m), newContext()), (e: Error) => e instanceof InvalidArgumentError && e.field === field, field);
    }
    assert.equal(ports.inUse, 0);
  });
});
