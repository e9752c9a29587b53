import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { registryChain, type NseHandler, type NsHandler } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { silentLogger } from '../../core/log.js';
import { registryConfig, startRegistry } from '../../components/registry/index.js';
import { nseConnectClient } from '../connect/index.js';
import { FakeClock } from '../../core/clock.js';
import { UnavailableError } from '../../core/errors.js';
import { ChannelPool } from '../../core/transport.js';
import { startTestRegistry } from '../connect/test-registry.js';
import { nsRegistryClient, nseRegistryClient, startNsRegistration, startRegistration } from './index.js';
import { INSECURE } from '../../security/tls.js';

function fakeHandler(failFirst: number) {
  const ops: string[] = [];
  let n = 0;
  const handler: NseHandler = {
    async register(item) {
      ops.push('register');
      if (n++ < failFirst) throw new UnavailableError('down');
      return { ...item, url: 'tcp://nsmgr:5001' };
    },
    find: async function* () {},
    async unregister() {
      ops.push('unregister');
    },
  };
  return { handler, ops };
}

const nse = NetworkServiceEndpoint.fromPartial({ name: 'nse-1', networkServiceNames: ['svc'], url: 'unix:///x.sock' });

describe('startRegistration', () => {
  it('retries the first Register with backoff, then unregisters on stop', async () => {
    const clock = new FakeClock();
    const { handler, ops } = fakeHandler(2);
    const reg = startRegistration({ nse, client: handler, clock });
    await clock.advance(0);
    await clock.advance(200);
    await clock.advance(400);
    const got = await reg.registered;
    assert.equal(got.url, 'tcp://nsmgr:5001');
    assert.deepEqual(ops, ['register', 'register', 'register']);
    await reg.stop();
    await reg.stop();
    assert.deepEqual(ops, ['register', 'register', 'register', 'unregister']);
    assert.equal(clock.pending, 0);
  });

  it('stop({ unregister: false }) leaves the registration and ends the lifetime of the chain', async () => {
    const { handler, ops } = fakeHandler(0);
    let lifetime: AbortSignal | undefined;
    const reg = startRegistration({
      nse,
      client: (signal) => {
        lifetime = signal;
        return handler;
      },
    });
    await reg.registered;
    assert.equal(lifetime?.aborted, false);
    await reg.stop({ unregister: false });
    assert.equal(lifetime?.aborted, true);
    assert.deepEqual(ops, ['register']);
  });

  it('registered rejects with CancelledError when stopped before success', async () => {
    const clock = new FakeClock();
    const { handler, ops } = fakeHandler(100);
    const reg = startRegistration({ nse, client: handler, clock });
    await clock.advance(0);
    await reg.stop();
    await assert.rejects(reg.registered, { name: 'CancelledError' });
    assert.deepEqual(ops, ['register']);
    assert.equal(clock.pending, 0);
  });

  it('registers an NS', async () => {
    const seen: string[] = [];
    const handler: NsHandler = {
      register: async (ns) => (seen.push(`r:${ns.name}`), ns),
      find: async function* () {},
      unregister: async (ns) => void seen.push(`u:${ns.name}`),
    };
    const reg = startNsRegistration({ ns: { name: 'svc', payload: 'ETHERNET', matches: [], pathIds: [] }, client: handler });
    assert.equal((await reg.registered).payload, 'ETHERNET');
    await reg.stop();
    assert.deepEqual(seen, ['r:svc', 'u:svc']);
  });
});

describe('registration over real gRPC', () => {
  const waitFor = async (what: string, cond: () => boolean, ms = 5_000) => {
    const until = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  /** The registry under test: the in-test one (counts calls) or the real registry component. */
  interface Reg {
    has(name: string): Promise<boolean>;
    registers(): number | undefined;
    stop(): Promise<void>;
  }
  const testRegistry = async (url: string): Promise<Reg> => {
    const r = await startTestRegistry(url, { expireMs: 600 });
    return { has: async (n) => r.nses.has(n), registers: () => r.calls.nseRegister, stop: () => r.stop() };
  };
  const realRegistry = async (url: string): Promise<Reg> => {
    const r = await startRegistry(registryConfig.parse({ NSM_INSECURE: 'true', NSM_LISTEN_ON: url, NSM_EXPIRE_PERIOD: '600ms' }), { log: silentLogger });
    const pool = new ChannelPool(INSECURE);
    const direct = registryChain('direct', [nseConnectClient({ pool, url })]);
    return {
      async has(name) {
        for await (const x of direct.find({ networkServiceEndpoint: NetworkServiceEndpoint.fromPartial({ name }), watch: false }, newContext())) {
          if (x.networkServiceEndpoint?.name === name) return true;
        }
        return false;
      },
      registers: () => undefined,
      async stop() {
        pool.close();
        await r.stop();
      },
    };
  };

  for (const [label, startReg] of [['in-test registry', testRegistry], ['registry component', realRegistry]] as const) {
    it(`keeps an NSE alive across expiry periods and re-registers after a restart (${label})`, { timeout: 20_000 }, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'nsm-reg-'));
      const url = `unix://${join(dir, 'registry.sock')}`;
      const pool = new ChannelPool(INSECURE);
      let registry = await startReg(url);
      const reg = startRegistration({
        nse,
        client: (signal) => nseRegistryClient({ pool, url, signal }, { retryMin: 50, retryMax: 400 }),
      });
      try {
        const first = await reg.registered;
        assert.ok(first.expirationTime);
        // Several expiry periods: the refresh at 2/3 (~400 ms) keeps it there.
        let missing = 0;
        const until = Date.now() + 2_000;
        while (Date.now() < until) {
          if (!(await registry.has('nse-1'))) missing++;
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.equal(missing, 0, 'never expired');
        const n = registry.registers();
        if (n !== undefined) assert.ok(n >= 4, `refreshed ${n} times`);

        // Registry restart on the same socket, with an empty store.
        await registry.stop();
        registry = await startReg(url);
        const deadline = Date.now() + 5_000;
        while (!(await registry.has('nse-1'))) {
          if (Date.now() > deadline) throw new Error('not re-registered within 5 s');
          await new Promise((r) => setTimeout(r, 20));
        }
        // And it is kept alive by the new registry as well.
        await new Promise((r) => setTimeout(r, 1_000));
        assert.ok(await registry.has('nse-1'));

        await reg.stop();
        assert.equal(await registry.has('nse-1'), false, 'unregistered on stop');
        const after = registry.registers();
        await new Promise((r) => setTimeout(r, 700));
        assert.equal(registry.registers(), after, 'nothing runs after stop');
      } finally {
        await reg.stop();
        pool.close();
        await registry.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('registers an NS through nsRegistryClient and heals it after a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nsm-reg-'));
    const url = `unix://${join(dir, 'registry.sock')}`;
    const pool = new ChannelPool(INSECURE);
    let registry = await startTestRegistry(url);
    const reg = startNsRegistration({
      ns: { name: 'svc', payload: '', matches: [], pathIds: [] },
      client: (signal) => nsRegistryClient({ pool, url, signal }, { retryMin: 50, retryMax: 400 }),
    });
    try {
      await reg.registered;
      assert.equal(registry.nss.get('svc')?.payload, 'IP');
      await registry.stop();
      registry = await startTestRegistry(url);
      await waitFor('NS re-registration', () => registry.nss.has('svc'));
      await reg.stop();
      assert.equal(registry.nss.has('svc'), false);
    } finally {
      await reg.stop();
      pool.close();
      await registry.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
