/**
 * Mechanism selection.
 *
 * `mechanismsServer(byType)` — server element of every hop that terminates a mechanism (forwarder NSC side,
 * NSE). On a request whose connection already carries a mechanism that this hop supports and that is still
 * offered in `mechanism_preferences` (or no preferences are sent), that mechanism is kept (refresh/heal);
 * otherwise the first preference whose type is in `byType` is selected, put in `connection.mechanism` and
 * handed to that type's sub-element (which continues the chain). If the sub-element fails, the next
 * supported preference is tried. No supported preference → `InvalidArgumentError` naming
 * `mechanism_preferences` and the offered types. On success the hop's own path segment gets the metric
 * `server_interface = "<TYPE>/<ifname>"` unless already present. Close goes through the sub-element of the
 * connection's mechanism type (plain `next` if none).
 *
 * `mechanismsClient(byType)` — client side: with a mechanism already on the connection only that type's
 * sub-element runs; otherwise every sub-element runs in order (each appends its preference). Records
 * `client_interface` on the response. It requires what its sub-elements require.
 *
 * Mirrors `sdk/pkg/networkservice/common/mechanisms` (server.go, client.go, common.go). No background work.
 */
import type { Connection, Mechanism } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { METRIC_CLIENT_INTERFACE, METRIC_SERVER_INTERFACE, PARAM_NAME } from '../../api/constants.js';
import { cloneRequest } from '../../api/helpers.js';
import { type NetworkServiceElement, type NetworkServiceHandler, networkServiceChain } from '../../core/chain.js';
import { InvalidArgumentError, NsmError, errorMessage } from '../../core/errors.js';

export const MECHANISMS_SERVER = 'mechanisms';
export const MECHANISMS_CLIENT = 'mechanisms-client';

export type MechanismElements = Readonly<Record<string, NetworkServiceElement>>;

/** Stores `<TYPE>/<ifname>` under `key` on the connection's current path segment, if not present. */
export function storeInterfaceMetric(conn: Connection, key: string, mechanism: Mechanism | undefined = conn.mechanism): void {
  const seg = conn.path?.pathSegments[conn.path.index];
  const name = mechanism?.parameters?.[PARAM_NAME];
  if (!seg || !mechanism || !name) return;
  seg.metrics ??= {};
  if (!(key in seg.metrics)) seg.metrics[key] = `${mechanism.type}/${name}`;
}

function offeredTypes(req: NetworkServiceRequest): string[] {
  return req.mechanismPreferences.map((m) => m.type);
}

export function mechanismsServer(byType: MechanismElements): NetworkServiceElement {
  const types = Object.freeze(Object.keys(byType));
  if (types.length === 0) throw new InvalidArgumentError('mechanisms', types, 'at least one mechanism type is required');

  const run = async (el: NetworkServiceElement, req: NetworkServiceRequest, ctx: Parameters<NetworkServiceElement['request']>[1], next: NetworkServiceHandler) => {
    const conn = await el.request(req, ctx, next);
    storeInterfaceMetric(conn, METRIC_SERVER_INTERFACE);
    return conn;
  };

  return {
    name: MECHANISMS_SERVER,
    provides: ['mechanism'],
    async request(req, ctx, next) {
      const current = req.connection?.mechanism;
      const offered = offeredTypes(req);
      if (current && byType[current.type] && (offered.length === 0 || offered.includes(current.type))) {
        return run(byType[current.type], req, ctx, next);
      }
      const errors: string[] = [];
      let lastErr: unknown;
      for (const pref of req.mechanismPreferences) {
        const el = byType[pref.type];
        if (!el) continue;
        const attempt = cloneRequest(req);
        attempt.connection!.mechanism = { cls: pref.cls, type: pref.type, parameters: { ...pref.parameters } };
        try {
          return await run(el, attempt, ctx, next);
        } catch (err) {
          errors.push(`${pref.type}: ${errorMessage(err)}`);
          lastErr = err;
        }
      }
      if (errors.length === 1) throw lastErr;
      if (errors.length > 1) throw new NsmError(`all supported mechanisms failed: ${errors.join('; ')}`, { cause: lastErr });
      throw new InvalidArgumentError('mechanism_preferences', offered, `no supported mechanism offered (supported: ${types.join(', ')})`);
    },
    async close(conn, ctx, next) {
      const el = conn.mechanism ? byType[conn.mechanism.type] : undefined;
      return el ? el.close(conn, ctx, next) : next.close(conn, ctx);
    },
  };
}

export function mechanismsClient(byType: MechanismElements): NetworkServiceElement {
  const all = Object.values(byType);
  const types = Object.keys(byType);
  // What the sub-elements need from the outer chain is this element's need (checked where it is placed).
  const requires = [...new Set(all.flatMap((el) => el.requires ?? []))];
  const chainOf = (next: NetworkServiceHandler) => networkServiceChain(MECHANISMS_CLIENT, all, { tail: next, given: requires });
  return {
    name: MECHANISMS_CLIENT,
    requires,
    provides: ['mechanism'],
    async request(req, ctx, next) {
      const current = req.connection?.mechanism;
      let conn: Connection;
      if (current && current.type !== '') {
        const el = byType[current.type];
        if (!el) throw new InvalidArgumentError('connection.mechanism', current.type, `unsupported mechanism (supported: ${types.join(', ')})`);
        conn = await el.request(req, ctx, next);
      } else {
        conn = await chainOf(next).request(req, ctx);
      }
      storeInterfaceMetric(conn, METRIC_CLIENT_INTERFACE);
      return conn;
    },
    async close(conn, ctx, next) {
      const el = conn.mechanism ? byType[conn.mechanism.type] : undefined;
      if (el) return el.close(conn, ctx, next);
      return chainOf(next).close(conn, ctx);
    },
  };
}
