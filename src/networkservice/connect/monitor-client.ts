/**
 * `monitorClientFactory`: the `monitorClient(url)` dependency of the `monitor` element for real gRPC
 * peers — a `MonitorConnection` client on the pool's channel that sends the per-RPC token metadata.
 */
import type { CallOptions } from 'nice-grpc';
import { MonitorConnectionDefinition, type ConnectionEvent, type MonitorConnectionClient, type MonitorScopeSelector } from '../../api/gen/connection.js';
import { fromClientError } from '../../core/errors.js';
import type { TokenGenerator } from '../../core/token.js';
import { createClient, type ChannelPool } from '../../core/transport.js';
import { serverTokenRequest, tokenMetadata } from './metadata.js';

type DeepPartialSelector = Parameters<MonitorConnectionClient['monitorConnections']>[0];

export function monitorClientFactory(deps: { pool: ChannelPool; tokens: TokenGenerator }): (url: string) => MonitorConnectionClient {
  return (url) => {
    const client = createClient(MonitorConnectionDefinition, deps.pool.get(url));
    return {
      monitorConnections(selector: DeepPartialSelector, options: CallOptions = {}): AsyncIterable<ConnectionEvent> {
        return (async function* () {
          // MonitorConnections has no policy upstream; the audience is known once the channel has shaken hands
          const metadata = await tokenMetadata(deps.tokens, serverTokenRequest(deps.pool, url));
          try {
            yield* client.monitorConnections(selector as MonitorScopeSelector, { ...options, metadata });
          } catch (err) {
            throw fromClientError(err, `MonitorConnections on ${url}`);
          }
        })();
      },
    };
  };
}
