import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Mechanism } from '../../../api/gen/connection.js';
import { Connection as ConnectionFns } from '../../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../../api/gen/networkservice.js';
import { networkServiceChain } from '../../../core/chain.js';
import { newContext } from '../../../core/context.js';
import { mechanismsServer } from '../index.js';
import { generateInterfaceName, kernelMechanismClient, kernelMechanismServer } from './index.js';

const GIVEN = { given: ['state'] };
const NSC_NETNS = 'file:///proc/4242/ns/net';
const NSE_NETNS = 'file:///proc/777/ns/net';

function req(service: string, prefs: Mechanism[], mechanism?: Mechanism): NetworkServiceRequest {
  return {
    connection: ConnectionFns.fromPartial({ id: 'c1', networkService: service, mechanism, path: { index: 0, pathSegments: [{ name: 'x', id: 'c1' }] } }),
    mechanismPreferences: prefs,
  };
}

describe('generateInterfaceName', () => {
  it('follows the upstream nanoid rule', () => {
    assert.match(generateInterfaceName('dataplane-interrupt'), /^dataplane--[0-9A-Za-z]{4}$/);
    assert.match(generateInterfaceName('icmp-responder'), /^icmp-respo-[0-9A-Za-z]{4}$/);
    assert.match(generateInterfaceName('svc'), /^svc-[0-9A-Za-z]{11}$/);
    assert.match(generateInterfaceName('a@b:c'), /^a-b-c-[0-9A-Za-z]{9}$/);
    assert.equal(generateInterfaceName('icmp-responder', () => 0), 'icmp-respo-0000');
    for (let i = 0; i < 50; i++) assert.equal(generateInterfaceName('dataplane-interrupt').length, 15);
  });
});

describe('kernel client', () => {
  it('sets inodeURL on every KERNEL preference and keeps the NSURL name', async () => {
    const r = req('dataplane-interrupt', [{ cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'nsm-1' } }, { cls: 'LOCAL', type: 'VFIO', parameters: {} }]);
    await networkServiceChain('t', [kernelMechanismClient({ inodeUrl: NSC_NETNS })], GIVEN).request(r, newContext());
    assert.deepEqual(r.mechanismPreferences, [
      { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'nsm-1', inodeURL: NSC_NETNS } },
      { cls: 'LOCAL', type: 'VFIO', parameters: {} },
    ]);
  });

  it('appends a KERNEL preference with a generated name that stays stable per connection', async () => {
    const chain = networkServiceChain('t', [kernelMechanismClient({ inodeUrl: NSC_NETNS })], GIVEN);
    const ctx = newContext();
    const r1 = req('dataplane-interrupt', []);
    await chain.request(r1, ctx);
    assert.equal(r1.mechanismPreferences.length, 1);
    const name = r1.mechanismPreferences[0].parameters.name;
    assert.match(name, /^dataplane--[0-9A-Za-z]{4}$/);
    assert.equal(r1.mechanismPreferences[0].parameters.inodeURL, NSC_NETNS);
    const r2 = req('dataplane-interrupt', []);
    await chain.request(r2, ctx);
    assert.equal(r2.mechanismPreferences[0].parameters.name, name);
  });

  it('uses a configured name, or the name of the connection mechanism on re-request', async () => {
    const r = req('svc', []);
    await networkServiceChain('t', [kernelMechanismClient({ inodeUrl: NSC_NETNS }, { interfaceName: 'nsm-9' })], GIVEN).request(r, newContext());
    assert.equal(r.mechanismPreferences[0].parameters.name, 'nsm-9');
    const again = req('svc', [], { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'keep-me' } });
    await networkServiceChain('t', [kernelMechanismClient({ inodeUrl: NSC_NETNS })], GIVEN).request(again, newContext());
    assert.equal(again.mechanismPreferences[0].parameters.name, 'keep-me');
    assert.throws(() => kernelMechanismClient({}, { interfaceName: 'way-too-long-name' }), { name: 'InvalidArgumentError' });
  });

  it('forwarder variant appends a bare KERNEL preference', async () => {
    const r = req('svc', []);
    await networkServiceChain('t', [kernelMechanismClient({}, { generateName: false })], GIVEN).request(r, newContext());
    assert.deepEqual(r.mechanismPreferences, [{ cls: 'LOCAL', type: 'KERNEL', parameters: {} }]);
  });
});

describe('kernel server', () => {
  it('sets inodeURL and generates a name for a selected KERNEL mechanism (via mechanisms server)', async () => {
    const chain = networkServiceChain('t', [mechanismsServer({ KERNEL: kernelMechanismServer({ inodeUrl: NSE_NETNS }) })]);
    const ctx = newContext();
    const conn = await chain.request(req('dataplane-interrupt', [{ cls: 'LOCAL', type: 'KERNEL', parameters: {} }]), ctx);
    assert.equal(conn.mechanism!.parameters.inodeURL, NSE_NETNS);
    assert.match(conn.mechanism!.parameters.name, /^dataplane--[0-9A-Za-z]{4}$/);
    assert.equal(conn.path!.pathSegments[0].metrics.server_interface, `KERNEL/${conn.mechanism!.parameters.name}`);
    const again = await chain.request(req('dataplane-interrupt', [{ cls: 'LOCAL', type: 'KERNEL', parameters: {} }]), ctx);
    assert.equal(again.mechanism!.parameters.name, conn.mechanism!.parameters.name);
  });

  it('keeps a given name and ignores other mechanism types', async () => {
    const chain = networkServiceChain('t', [kernelMechanismServer({ inodeUrl: NSE_NETNS })]);
    const named = await chain.request(req('svc', [], { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'nsm-1', inodeURL: 'inode://1/2' } }), newContext());
    assert.deepEqual(named.mechanism!.parameters, { name: 'nsm-1', inodeURL: NSE_NETNS });
    const other = await chain.request(req('svc', [], { cls: 'LOCAL', type: 'MEMIF', parameters: {} }), newContext());
    assert.deepEqual(other.mechanism!.parameters, {});
  });
});
