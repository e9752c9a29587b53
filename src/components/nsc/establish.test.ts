import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Connection, type ConnectionEvent, ConnectionEventType, type MonitorConnectionClient } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { parseNsUrl } from '../../api/nsurl.js';
import type { NetworkServiceHandler } from '../../core/chain.js';
import { FakeClock } from '../../core/clock.js';
import { UnavailableError } from '../../core/errors.js';
import { silentLogger } from '../../core/log.js';
import { DEFAULT_HEAL_BASE_BACKOFF } from '../../networkservice/heal/index.js';
import { adopt, buildRequest, establish, type EstablishDeps } from './establish.js';

const OPTS = { name: 'nsc', requestTimeout: 1000 };

/** A monitor client whose stream yields `events` (or throws `error`) and records the selectors asked for. */
function monitor(events: ConnectionEvent[], error?: Error) {
  const selectors: unknown[] = [];
  const client = {
    monitorConnections(selector: unknown) {
      selectors.push(selector);
      return (async function* () {
        if (error) throw error;
        yield* events;
      })();
    },
  } as unknown as MonitorConnectionClient;
  return { client: () => client, selectors };
}

/** A chain that fails the first `failures` Requests, then returns the request's connection. */
function chain(failures: number) {
  const requests: NetworkServiceRequest[] = [];
  const handler: NetworkServiceHandler = {
    async request(req) {
      requests.push(req);
      if (requests.length <= failures) throw new UnavailableError('nsmgr not ready');
      return Connection.fromPartial({ ...req.connection });
    },
    async close() {},
  };
  return { handler, requests };
}

function deps(over: Partial<EstablishDeps> = {}): EstablishDeps {
  return { chain: chain(0).handler, monitor: monitor([]).client, clock: new FakeClock(), log: silentLogger, signal: new AbortController().signal, ...over };
}

const held = (id: string, mechanism: string) =>
  Connection.fromPartial({
    id: 'nsmgr-side-id',
    networkServiceEndpointName: 'nse-1',
    labels: { fromNsmgr: 'yes' },
    mechanism: { cls: 'LOCAL', type: mechanism, parameters: {} },
    path: { index: 1, pathSegments: [{ id, name: 'nsc' }, { id: 'nsmgr-side-id', name: 'nsmgr' }] },
  });

describe('nsc establish', () => {
  it('buildRequest: id <name>-<i>, the NSURL service, labels and mechanism', () => {
    const req = buildRequest('nsc', 1, parseNsUrl('kernel://ns-1/nsm-1?app=a'));
    assert.equal(req.connection!.id, 'nsc-1');
    assert.equal(req.connection!.networkService, 'ns-1');
    assert.deepEqual(req.connection!.labels, { app: 'a' });
    assert.equal(req.mechanismPreferences[0]!.type, 'KERNEL');
  });

  it('adopts the connection nsmgr still holds for this id and mechanism', async () => {
    const req = buildRequest('nsc', 0, parseNsUrl('kernel://ns-1/nsm-1?app=a'));
    const m = monitor([{ type: ConnectionEventType.INITIAL_STATE_TRANSFER, connections: { x: held('nsc-0', 'KERNEL') } }]);
    await adopt(req, deps({ monitor: m.client }), OPTS);
    assert.deepEqual(m.selectors, [{ pathSegments: [{ id: 'nsc-0', name: 'nsc', token: '', expires: undefined, metrics: {} }], networkServices: [] }]);
    const c = req.connection!;
    assert.equal(c.id, 'nsc-0');
    assert.equal(c.path?.index, 0);
    assert.equal(c.networkServiceEndpointName, 'nse-1');
    assert.equal(c.mechanism, undefined);
    assert.deepEqual(c.labels, { app: 'a', fromNsmgr: 'yes' });
  });

  it('adopts nothing of another client, of another mechanism, or when nsmgr is unreachable', async () => {
    for (const m of [
      monitor([{ type: ConnectionEventType.INITIAL_STATE_TRANSFER, connections: { x: held('nsc-9', 'KERNEL') } }]),
      monitor([{ type: ConnectionEventType.INITIAL_STATE_TRANSFER, connections: { x: held('nsc-0', 'MEMIF') } }]),
      monitor([], new UnavailableError('connection refused')),
    ]) {
      const req = buildRequest('nsc', 0, parseNsUrl('kernel://ns-1/nsm-1'));
      const before = structuredClone(req.connection);
      await adopt(req, deps({ monitor: m.client }), OPTS);
      assert.deepEqual(req.connection, before);
    }
  });

  it('retries the first Request with heal backoff until it succeeds', async () => {
    const clock = new FakeClock();
    const c = chain(2);
    // random() = 1: the jitter's upper end, the full backoff.
    const done = establish(buildRequest('nsc', 0, parseNsUrl('ns-1')), deps({ chain: c.handler, clock, random: () => 1 }), OPTS);
    for (let i = 0; i < 10 && c.requests.length < 2; i++) await clock.advance(0);
    assert.equal(c.requests.length, 1, 'waits after the first failure');
    await clock.advance(DEFAULT_HEAL_BASE_BACKOFF);
    assert.equal(c.requests.length, 2);
    await clock.advance(DEFAULT_HEAL_BASE_BACKOFF);
    assert.equal(c.requests.length, 2, 'the second wait is twice as long');
    await clock.advance(DEFAULT_HEAL_BASE_BACKOFF);
    assert.equal((await done).id, 'nsc-0');
    assert.equal(c.requests.length, 3);
  });

  it('stops retrying when the NSC stops', async () => {
    const stop = new AbortController();
    const clock = new FakeClock();
    const done = establish(buildRequest('nsc', 0, parseNsUrl('ns-1')), deps({ chain: chain(Infinity).handler, clock, signal: stop.signal }), OPTS);
    await clock.advance(0);
    stop.abort();
    await assert.rejects(done);
    assert.equal(clock.pending, 0);
  });
});
