import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection, Mechanism } from '../../api/gen/connection.js';
import { Connection as ConnectionFns } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { type NetworkServiceElement, networkServiceChain, passThrough } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { mechanismsClient, mechanismsServer } from './index.js';

const KERNEL = (name?: string): Mechanism => ({ cls: 'LOCAL', type: 'KERNEL', parameters: name ? { name } : {} });
const MEMIF: Mechanism = { cls: 'LOCAL', type: 'MEMIF', parameters: {} };

function req(prefs: Mechanism[], mechanism?: Mechanism): NetworkServiceRequest {
  return {
    connection: ConnectionFns.fromPartial({
      id: 'c1',
      networkService: 'svc',
      mechanism,
      path: { index: 1, pathSegments: [{ name: 'nsc', id: 'c1' }, { name: 'nse', id: 'u1' }] },
    }),
    mechanismPreferences: prefs,
  };
}

/** Records which sub-element handled the call; fails when told. */
function sub(tag: string, seen: string[], fail = false): NetworkServiceElement {
  return passThrough(tag, {
    request: async (r, ctx, next) => {
      seen.push(`${tag}:${r.connection!.mechanism?.type}`);
      if (fail) throw new Error(`${tag} failed`);
      return next.request(r, ctx);
    },
    close: async (c, ctx, next) => {
      seen.push(`close:${tag}`);
      return next.close(c, ctx);
    },
  });
}

describe('mechanisms server', () => {
  it('selects the first supported preference and records server_interface', async () => {
    const seen: string[] = [];
    const chain = networkServiceChain('t', [mechanismsServer({ KERNEL: sub('kernel', seen), NOOP: sub('noop', seen) })]);
    const conn = await chain.request(req([MEMIF, KERNEL('nsm-1'), { cls: 'LOCAL', type: 'NOOP', parameters: {} }]), newContext());
    assert.deepEqual(seen, ['kernel:KERNEL']);
    assert.deepEqual(conn.mechanism, KERNEL('nsm-1'));
    assert.deepEqual(conn.path!.pathSegments[1].metrics, { server_interface: 'KERNEL/nsm-1' });
    assert.deepEqual(conn.path!.pathSegments[0].metrics, {});
  });

  it('does not overwrite an existing metric', async () => {
    const chain = networkServiceChain('t', [mechanismsServer({ KERNEL: sub('kernel', []) })]);
    const r = req([KERNEL('nsm-1')]);
    r.connection!.path!.pathSegments[1].metrics = { server_interface: 'KERNEL/old' };
    const conn = await chain.request(r, newContext());
    assert.equal(conn.path!.pathSegments[1].metrics.server_interface, 'KERNEL/old');
  });

  it('keeps an already selected mechanism when still offered, re-selects when not', async () => {
    const seen: string[] = [];
    const chain = networkServiceChain('t', [mechanismsServer({ KERNEL: sub('kernel', seen), NOOP: sub('noop', seen) })]);
    const kept = await chain.request(req([{ cls: 'LOCAL', type: 'NOOP', parameters: {} }, KERNEL('nsm-1')], KERNEL('nsm-1')), newContext());
    assert.deepEqual(kept.mechanism, KERNEL('nsm-1'));
    const reselected = await chain.request(req([{ cls: 'LOCAL', type: 'NOOP', parameters: {} }], KERNEL('nsm-1')), newContext());
    assert.equal(reselected.mechanism!.type, 'NOOP');
    const noPrefs = await chain.request(req([], KERNEL('nsm-1')), newContext());
    assert.equal(noPrefs.mechanism!.type, 'KERNEL');
    assert.deepEqual(seen, ['kernel:KERNEL', 'noop:NOOP', 'kernel:KERNEL']);
  });

  it('tries the next supported preference when a sub-element fails', async () => {
    const seen: string[] = [];
    const chain = networkServiceChain('t', [mechanismsServer({ KERNEL: sub('kernel', seen, true), NOOP: sub('noop', seen) })]);
    const conn = await chain.request(req([KERNEL('a'), { cls: 'LOCAL', type: 'NOOP', parameters: {} }]), newContext());
    assert.equal(conn.mechanism!.type, 'NOOP');
    assert.deepEqual(seen, ['kernel:KERNEL', 'noop:NOOP']);
  });

  it('rethrows the error of the only supported preference', async () => {
    const chain = networkServiceChain('t', [mechanismsServer({ KERNEL: sub('kernel', [], true) })]);
    await assert.rejects(chain.request(req([KERNEL('a')]), newContext()), /kernel failed/);
  });

  it('rejects unsupported preferences naming mechanism_preferences and the offered types', async () => {
    const chain = networkServiceChain('t', [mechanismsServer({ KERNEL: sub('kernel', []) })]);
    await assert.rejects(chain.request(req([MEMIF, { cls: 'REMOTE', type: 'VXLAN', parameters: {} }]), newContext()), (e: Error & { field?: string; value?: unknown }) =>
      e.name === 'InvalidArgumentError' && e.field === 'mechanism_preferences' && JSON.stringify(e.value) === '["MEMIF","VXLAN"]');
    await assert.rejects(chain.request(req([]), newContext()), { name: 'InvalidArgumentError' });
  });

  it('closes through the sub-element of the connection mechanism', async () => {
    const seen: string[] = [];
    let closed = 0;
    const chain = networkServiceChain('t', [mechanismsServer({ KERNEL: sub('kernel', seen), NOOP: sub('noop', seen) })], {
      tail: { request: async (r) => r.connection!, close: async () => void closed++ },
    });
    await chain.close(ConnectionFns.fromPartial({ id: 'c1', mechanism: KERNEL('x') }), newContext());
    await chain.close(ConnectionFns.fromPartial({ id: 'c1' }), newContext());
    assert.deepEqual(seen, ['close:kernel']);
    assert.equal(closed, 2);
  });
});

describe('mechanisms client', () => {
  const appender = (type: string): NetworkServiceElement =>
    passThrough(type, {
      request: async (r, ctx, next) => {
        r.mechanismPreferences.push({ cls: 'LOCAL', type, parameters: {} });
        return next.request(r, ctx);
      },
    });
  /** Plays the server: selects the first preference and names the interface. */
  const server: NetworkServiceElement = passThrough('server', {
    request: async (r) => ({ ...(r.connection as Connection), mechanism: { ...r.mechanismPreferences[0], parameters: { name: 'if-1' } } }),
  });

  it('runs all sub-elements when no mechanism is selected, and records client_interface', async () => {
    const chain = networkServiceChain('t', [mechanismsClient({ KERNEL: appender('KERNEL'), MEMIF: appender('MEMIF') }), server]);
    const r = req([]);
    r.connection!.path!.index = 0;
    const conn = await chain.request(r, newContext());
    assert.deepEqual(r.mechanismPreferences.map((m) => m.type), ['KERNEL', 'MEMIF']);
    assert.equal(conn.path!.pathSegments[0].metrics.client_interface, 'KERNEL/if-1');
  });

  it('runs only the selected type on re-request, rejects an unsupported one', async () => {
    const chain = networkServiceChain('t', [mechanismsClient({ KERNEL: appender('KERNEL'), MEMIF: appender('MEMIF') }), server]);
    const r = req([], MEMIF);
    await chain.request(r, newContext());
    assert.deepEqual(r.mechanismPreferences.map((m) => m.type), ['MEMIF']);
    await assert.rejects(chain.request(req([], { cls: 'REMOTE', type: 'VXLAN', parameters: {} }), newContext()), { name: 'InvalidArgumentError' });
  });
});
