/**
 * Short-lived gRPC calls the local-mesh commands make: Health.Check, registry Find (no watch) and the
 * initial state of nsmgr's MonitorConnections. Each opens its own channel, with the transport security
 * the caller gives (mTLS with an SVID for a secure mesh, INSECURE for `nsm up --insecure`), and closes it.
 * `probeHealth` also reports the server's SPIFFE ID and SVID expiry from the mTLS handshake.
 */
import { createClient, type Channel } from 'nice-grpc';
import { HealthCheckResponse_ServingStatus, HealthDefinition } from '../api/gen/health.js';
import {
  NetworkServiceEndpointRegistryDefinition,
  NetworkServiceRegistryDefinition,
  type NetworkService,
  type NetworkServiceEndpoint,
} from '../api/gen/registry.js';
import { ConnectionEventType, MonitorConnectionDefinition, type Connection } from '../api/gen/connection.js';
import { errorMessage } from '../core/errors.js';
import { openChannel, serverIdentityOf } from '../core/transport.js';
import { sleep } from '../core/signals.js';
import type { PeerIdentity, TransportSecurity } from '../security/tls.js';

/** An abort signal that fires after `ms`; `done()` clears the timer. */
function deadline(ms: number): { signal: AbortSignal; done(): void } {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), ms);
  return { signal: ac.signal, done: () => clearTimeout(t) };
}

async function withChannel<T>(socket: string, security: TransportSecurity, fn: (ch: Channel) => Promise<T>): Promise<T> {
  const ch = openChannel(`unix://${socket}`, security);
  try {
    return await fn(ch);
  } finally {
    ch.close();
  }
}

export type HealthResult = 'SERVING' | 'NOT_SERVING' | 'UNKNOWN' | 'UNREACHABLE';

export interface HealthProbe {
  readonly health: HealthResult;
  /** The server's SPIFFE ID and certificate from the mTLS handshake; absent over plaintext. */
  readonly identity?: PeerIdentity;
  /** Why the server was unreachable. */
  readonly error?: string;
}

/** Health.Check over `security`, with the server's identity from the handshake of the call's channel. */
export async function probeHealth(socket: string, security: TransportSecurity, timeoutMs = 1000): Promise<HealthProbe> {
  try {
    return await withChannel(socket, security, async (ch) => {
      const d = deadline(timeoutMs);
      const res = await createClient(HealthDefinition, ch)
        .check({ service: '' }, { signal: d.signal })
        .finally(() => d.done());
      const identity = serverIdentityOf(ch);
      const health: HealthResult =
        res.status === HealthCheckResponse_ServingStatus.SERVING ? 'SERVING' : res.status === HealthCheckResponse_ServingStatus.NOT_SERVING ? 'NOT_SERVING' : 'UNKNOWN';
      return identity ? { health, identity } : { health };
    });
  } catch (err) {
    return { health: 'UNREACHABLE', error: errorMessage(err) };
  }
}

export async function checkHealth(socket: string, security: TransportSecurity, timeoutMs = 1000): Promise<HealthResult> {
  return (await probeHealth(socket, security, timeoutMs)).health;
}

/** Polls Health.Check until SERVING; false when `timeoutMs` passes or `stop()` says to give up. */
export async function waitServing(socket: string, security: TransportSecurity, timeoutMs: number, stop?: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (stop?.()) return false;
    if ((await checkHealth(socket, security, Math.min(1000, Math.max(100, deadline - Date.now())))) === 'SERVING') return true;
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

export async function findServices(socket: string, security: TransportSecurity, timeoutMs = 2000): Promise<NetworkService[]> {
  return withChannel(socket, security, async (ch) => {
    const d = deadline(timeoutMs);
    const res = await collect(createClient(NetworkServiceRegistryDefinition, ch).find({ networkService: {}, watch: false }, { signal: d.signal }), d.done);
    return res.filter((r) => !r.deleted && r.networkService).map((r) => r.networkService!);
  });
}

export async function findEndpoints(socket: string, security: TransportSecurity, name = '', timeoutMs = 2000): Promise<NetworkServiceEndpoint[]> {
  return withChannel(socket, security, async (ch) => {
    const d = deadline(timeoutMs);
    const res = await collect(
      createClient(NetworkServiceEndpointRegistryDefinition, ch).find({ networkServiceEndpoint: { name }, watch: false }, { signal: d.signal }),
      d.done,
    );
    return res.filter((r) => !r.deleted && r.networkServiceEndpoint).map((r) => r.networkServiceEndpoint!);
  });
}

/** The connections nsmgr reports in the INITIAL_STATE_TRANSFER event of MonitorConnections. */
export async function initialConnections(socket: string, security: TransportSecurity, timeoutMs = 2000): Promise<Connection[]> {
  return withChannel(socket, security, async (ch) => {
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
