/**
 * `connect` — the terminal element of a registry chain: performs the Register / Find / Unregister call
 * on a remote registry (or nsmgr) over gRPC. It never calls `next`.
 *
 * - Dials through the shared `ChannelPool` (bounded by `dialTimeout`; an unreachable peer is an
 *   `UnavailableError`), then calls with the context's signal; unary calls are bounded by the context's
 *   deadline, or by `callTimeout` when it has none.
 * - Find streams are passed through as `AsyncIterable`s; the gRPC stream is cancelled when the context's
 *   signal aborts (the iterable then just ends) or when the consumer stops iterating.
 * - gRPC errors are mapped with `fromClientError`.
 * - With `tokens` (a secure hop), Register and Unregister carry `nsm-client-token`/`-expires` minted for
 *   the server the channel's mTLS handshake found, and the registry path in metadata `path` (the call's
 *   `REGISTRY_PATH`, set by `update-path` on nsmgr; an empty path from a client); the `path` response
 *   header the server answers with replaces `REGISTRY_PATH`, so it flows back to this hop's caller.
 *   Without `tokens` (insecure) no metadata is sent, as before.
 *
 * Client variants (`nsConnectClient`, `nseConnectClient`) end a registry client chain (NSE, forwarder,
 * `nsm apply`); server variants (`nsConnectServer`, `nseConnectServer`) end nsmgr's registry server chain
 * and forward to `NSM_REGISTRY_URL`. Mirrors upstream `sdk/pkg/registry/common/connect` (+ `dial`,
 * `clientconn`).
 */
import {
  NetworkServiceEndpointRegistryDefinition,
  NetworkServiceRegistryDefinition,
  type NetworkService,
  type NetworkServiceEndpoint,
  type NetworkServiceEndpointQuery,
  type NetworkServiceEndpointResponse,
  type NetworkServiceQuery,
  type NetworkServiceResponse,
} from '../../api/gen/registry.js';
import type { NsElement, NseElement, RegistryElement } from '../../core/chain.js';
import { realClock, type Clock } from '../../core/clock.js';
import { timeLeft, type CallContext } from '../../core/context.js';
import { CancelledError, UnavailableError, errorMessage, fromClientError } from '../../core/errors.js';
import { linkSignals } from '../../core/signals.js';
import { Metadata, type CallOptions } from 'nice-grpc';
import { MD_REGISTRY_PATH } from '../../api/constants.js';
import { clientTokenMetadata, type TokenGenerator } from '../../core/token.js';
import { createClient, parseUrl, type ChannelPool } from '../../core/transport.js';
import { serverTokenRequest } from '../../networkservice/connect/metadata.js';
import { decodeRegistryPath, encodeRegistryPath } from '../../security/registry-path.js';
import { EMPTY_REGISTRY_PATH, REGISTRY_PATH } from '../update-path/index.js';

/** Upstream registry client dial timeout (`sdk:pkg/registry/chains/client`). */
export const DEFAULT_DIAL_TIMEOUT_MS = 300;
/** Upper bound of one unary call when the context carries no deadline (upstream retry try-timeout). */
export const DEFAULT_CALL_TIMEOUT_MS = 15_000;

export interface ConnectDeps {
  readonly pool: ChannelPool;
  /** Registry (or nsmgr) URL: `unix:///path`, `tcp://host:port` or `host:port`. */
  readonly url: string;
  /** Reads the time a context's deadline is compared with. */
  readonly clock?: Clock;
  /** A secure hop: send the per-RPC token and the registry path (see above). Absent on an insecure hop. */
  readonly tokens?: TokenGenerator;
}

export interface ConnectOptions {
  readonly dialTimeout?: number;
  readonly callTimeout?: number;
}

interface ConnectConfig {
  readonly url: string;
  readonly dialTimeout: number;
  readonly callTimeout: number;
}

function resolveConfig(deps: ConnectDeps, options: ConnectOptions): ConnectConfig {
  parseUrl(deps.url, 'registry url');
  return Object.freeze({
    url: deps.url,
    dialTimeout: options.dialTimeout ?? DEFAULT_DIAL_TIMEOUT_MS,
    callTimeout: options.callTimeout ?? DEFAULT_CALL_TIMEOUT_MS,
  });
}

/** The three remote calls of one registry service, uniform over NS and NSE. */
interface Remote<T, Q, R> {
  register(item: T, opts: CallOptions): Promise<T>;
  find(query: Q, opts: CallOptions): AsyncIterable<R>;
  unregister(item: T, opts: CallOptions): Promise<unknown>;
}

/**
 * Call options of a Register/Unregister: the signal, and on a secure hop the token for the server and the
 * path, with the answered `path` header put back into the call's state.
 */
async function pathCallOptions(deps: ConnectDeps, ctx: CallContext, signal: AbortSignal): Promise<CallOptions> {
  if (!deps.tokens) return { signal };
  const issued = await deps.tokens.generate(serverTokenRequest(deps.pool, deps.url));
  const path = ctx.state.get(REGISTRY_PATH) ?? EMPTY_REGISTRY_PATH;
  return {
    signal,
    metadata: Metadata({ ...clientTokenMetadata(issued), [MD_REGISTRY_PATH]: encodeRegistryPath(path) }),
    onHeader(header) {
      try {
        const answered = decodeRegistryPath(header.get(MD_REGISTRY_PATH));
        if (answered) ctx.state.set(REGISTRY_PATH, answered);
      } catch (err) {
        // the caller's authorize sees the path without the downstream's answer and judges it
        ctx.log.warn({ url: deps.url, err: errorMessage(err) }, 'ignoring a malformed path response header');
      }
    },
  };
}

function connectElement<T, Q, R>(
  name: string,
  what: string,
  deps: ConnectDeps,
  options: ConnectOptions,
  remote: (ch: ReturnType<ChannelPool['get']>) => Remote<T, Q, R>,
): RegistryElement<T, Q, R> {
  const config = resolveConfig(deps, options);
  const clock = deps.clock ?? realClock;
  const dial = async (signal: AbortSignal) => remote(await deps.pool.dial(config.url, config.dialTimeout, signal));

  async function unary<V>(op: string, ctx: CallContext, call: (r: Remote<T, Q, R>, signal: AbortSignal) => Promise<V>): Promise<V> {
    const budget = timeLeft(ctx, config.callTimeout, clock.now());
    const linked = linkSignals([ctx.signal], budget);
    try {
      const r = await dial(linked.signal);
      return await call(r, linked.signal);
    } catch (err) {
      if (ctx.signal.aborted) throw new CancelledError(`${what} ${op} at ${config.url} cancelled`, { cause: ctx.signal.reason });
      if (linked.signal.aborted) {
        throw new UnavailableError(`${what} ${op} at ${config.url}: no answer within ${budget} ms`, { cause: err });
      }
      throw fromClientError(err, `${what} ${op} at ${config.url}`);
    } finally {
      linked.dispose();
    }
  }

  return {
    name,
    register: (item, ctx) => unary('Register', ctx, async (r, signal) => r.register(item, await pathCallOptions(deps, ctx, signal))),
    unregister: async (item, ctx) => {
      await unary('Unregister', ctx, async (r, signal) => r.unregister(item, await pathCallOptions(deps, ctx, signal)));
    },
    async *find(query, ctx) {
      try {
        const r = await dial(ctx.signal);
        yield* r.find(query, { signal: ctx.signal });
      } catch (err) {
        if (ctx.signal.aborted) return;
        throw fromClientError(err, `${what} Find at ${config.url}`);
      }
    },
  };
}

const nseRemote = (ch: ReturnType<ChannelPool['get']>): Remote<NetworkServiceEndpoint, NetworkServiceEndpointQuery, NetworkServiceEndpointResponse> =>
  createClient(NetworkServiceEndpointRegistryDefinition, ch);

const nsRemote = (ch: ReturnType<ChannelPool['get']>): Remote<NetworkService, NetworkServiceQuery, NetworkServiceResponse> =>
  createClient(NetworkServiceRegistryDefinition, ch);

/** Terminal NSE element of a registry client chain. */
export function nseConnectClient(deps: ConnectDeps, options: ConnectOptions = {}): NseElement {
  return connectElement('connect', 'registry NSE', deps, options, nseRemote);
}

/** Terminal NS element of a registry client chain. */
export function nsConnectClient(deps: ConnectDeps, options: ConnectOptions = {}): NsElement {
  return connectElement('connect', 'registry NS', deps, options, nsRemote);
}

/** Terminal NSE element of nsmgr's registry server chain: forwards to the registry (`NSM_REGISTRY_URL`). */
export function nseConnectServer(deps: ConnectDeps, options: ConnectOptions = {}): NseElement {
  return connectElement('connect-server', 'registry NSE', deps, options, nseRemote);
}

/** Terminal NS element of nsmgr's registry server chain: forwards to the registry (`NSM_REGISTRY_URL`). */
export function nsConnectServer(deps: ConnectDeps, options: ConnectOptions = {}): NsElement {
  return connectElement('connect-server', 'registry NS', deps, options, nsRemote);
}
