/** IPv4 + IPv6 on one kernel connection (one NSM_CIDR_PREFIX group with a v4 and a v6 prefix), real netns. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { addrs, netns, nsm, requireRoot, sh, startMesh, waitFor } from './harness.js';

async function ping6(ns: string, addr: string): Promise<boolean> {
  try {
    await sh('ip', ['netns', 'exec', ns, 'ping', '-6', '-n', '-q', '-c', '1', '-W', '1', addr]);
    return true;
  } catch {
    return false;
  }
}

it('dual stack: the NSC side gets an IPv4 and an IPv6 address; pings work in both families, both ways (real processes, real netns)', async (t) => {
  if (!requireRoot(t)) return;
  const mesh = await startMesh(t);
  const nseNs = await netns(t, 'nse6');
  const nscNs = await netns(t, 'nsc6');
  const nse = nsm(t, mesh.dir, 'nse', ['nse'], { NSM_NAME: 'nse-dual', NSM_CONNECT_TO: mesh.sock.nsmgr, NSM_CIDR_PREFIX: '[172.16.1.100/31,fd00:16::100/127]', NSM_SERVICE_NAMES: 'dual' }, nseNs);
  await nse.waitLog(/endpoint registered/);
  const nsc = nsm(t, mesh.dir, 'nsc', ['nsc'], { NSM_NAME: 'nsc-dual', NSM_CONNECT_TO: mesh.sock.nsmgr, NSM_NETWORK_SERVICES: 'kernel://dual/nsm-1' }, nscNs);
  await nsc.waitLog(/connection established/);
  assert.deepEqual((await addrs(nscNs, 'nsm-1')).sort(), ['172.16.1.101/32', 'fd00:16::101/128']);
  await waitFor('IPv6 ping NSC → NSE', () => ping6(nscNs, 'fd00:16::100'), 5000);
  assert.ok(await ping6(nseNs, 'fd00:16::101'), 'IPv6 ping NSE → NSC');
  const host = JSON.parse(await sh('ip', ['-j', 'addr'])) as Array<{ addr_info: Array<{ local: string }> }>;
  assert.ok(!host.some((l) => l.addr_info.some((a) => a.local.startsWith('172.16.1.') || a.local.startsWith('fd00:16::'))), 'no connection address in the host netns');
});
