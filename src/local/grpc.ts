/**
 * Short-lived gRPC calls the local-mesh commands make: Health.Check, registry Find (no watch) and the
 * initial state of nsmgr's MonitorConnections. Each opens its own channel and closes it.
 */
import { createChannel, createClient, type Channel } from 'nice-grpc';
import { HealthCheckResponse_ServingStatus, HealthDefinition } from '../api/gen/health.js';
import {
  NetworkServiceEndpointRegistryDefinition,
  NetworkServiceRegistryDefinition,
  type NetworkService,
  type NetworkServiceEndpoint,
} from '../api/gen/registry.js';
import { ConnectionEventType, MonitorConnectionDefinition, type Connection } from '../api/gen/connection.js';
import { CHANNEL_OPTIONS } from '../core/transport.js';
import { sleep } from '../core/signals.js';

/** An abort signal that fires after `ms`; `done()` clears the timer. */
function deadline(ms: number): { signal: AbortSignal; done(): void } {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), ms);
  return { signal: ac.signal, done: () => clearTimeout(t) };
}

async function withChannel<T>(socket: string, fn: (ch: Channel) => Promise<T>): Promise<T> {
  const ch = createChannel(`unix://${socket}`, undefined, CHANNEL_OPTIONS);
  try {
    return await fn(ch);
  } finally {
    ch.close();
  }
}

export type HealthResult = 'SERVING' | 'NOT_SERVING' | 'UNKNOWN' | 'UNREACHABLE';

export async function checkHealth(socket: string, timeoutMs = 1000): Promise<HealthResult> {
  try {
    return await withChannel(socket, async (ch) => {
      const d = deadline(timeoutMs);
      const res = await createClient(HealthDefinition, ch)
        .check({ service: '' }, { signal: d.signal })
        .finally(() => d.done());
      if (res.status === HealthCheckResponse_ServingStatus.SERVING) return 'SERVING';
      if (res.status === HealthCheckResponse_ServingStatus.NOT_SERVING) return 'NOT_SERVING';
      return 'UNKNOWN';
    });
  } catch {
    return 'UNREACHABLE';
  }
}

/** Polls Health.Check until SERVING; false when `timeoutMs` passes or `stop()` says to give up. */
export async function waitServing(socket: string, timeoutMs: number, stop?: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (stop?.()) return false;
    if ((await checkHealth(socket, Math.min(1000, Math.max(100, deadline - Date.now())))) === 'SERVING') return true;
    await sleep(100);
  }
  return false;
}

async function collect<T>(it: AsyncIterable<T>, done: () => void): Promise<T[]> {
  const out: T[] = [];
  try {
    for await (const x of it) out.push(x);
  } finally {
    done();
  }
  return out;
}

export async function findServices(socket: string, timeoutMs = 2000): Promise<NetworkService[]> {
  return withChannel(socket, async (ch) => {
    const d = deadline(timeoutMs);
    const res = await collect(createClient(NetworkServiceRegistryDefinition, ch).find({ networkService: {}, watch: false }, { signal: d.signal }), d.done);
    return res.filter((r) => !r.deleted && r.networkService).map((r) => r.networkService!);
  });
}

export async function findEndpoints(socket: string, name = '', timeoutMs = 2000): Promise<NetworkServiceEndpoint[]> {
  return withChannel(socket, async (ch) => {
    const d = deadline(timeoutMs);
    const res = await collect(
      createClient(NetworkServiceEndpointRegistryDefinition, ch).find({ networkServiceEndpoint: { name }, watch: false }, { signal: d.signal }),
      d.done,
    );
    return res.filter((r) => !r.deleted && r.networkServiceEndpoint).map((r) => r.networkServiceEndpoint!);
  });
}

/** The connections nsmgr reports in the INITIAL_STATE_TRANSFER event of MonitorConnections. */
export async function initialConnections(socket: string, timeoutMs = 2000): Promise<Connection[]> {
  return withChannel(socket, async (ch) => {
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), timeoutMs);
    try {
      for await (const ev of createClient(MonitorConnectionDefinition, ch).monitorConnections({ pathSegments: [], networkServices: [] }, { signal: ac.signal })) {
        if (ev.type === ConnectionEventType.INITIAL_STATE_TRANSFER) return Object.values(ev.connections);
      }
      return [];
    } finally {
      clearTimeout(t);
      ac.abort();
    }
  });
}
