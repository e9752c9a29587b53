/**
 * The gRPC server under `serve()`: grpc-js with nice-grpc's own method handlers, listening on tcp as usual
 * and on unix sockets through a listener of our own, so that each accepted unix connection is known and
 * the network namespace at its other end can be looked up (`peerOf`, core/peer.ts) — what a netns binding needs
 * and what grpc-js does not expose (its peer string for a unix socket is "unknown").
 *
 * Each accepted unix socket gets a private peer tag (`unix-peer:<n>`) as its remote address, which grpc-js
 * reports as the call's peer (nice-grpc's `CallContext.peer`); `peerOf(tag)` resolves it lazily, once per
 * connection, and forgets it when the socket closes.
 *
 * nice-grpc keeps its handler factories internal; they are loaded from their files here (pinned version,
 * see package.json) so that calls behave exactly as under nice-grpc's own `createServer` — the unit test
 * of this file fails loudly if a nice-grpc upgrade moves them.
 */
import { createRequire } from 'node:module';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { Server, ServerCredentials, type ChannelOptions, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { CompatServiceDefinition } from 'nice-grpc';
import { peerOfFd, socketFd, type Peer } from './peer.js';

interface MethodDefinition {
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}
type Handler = (definition: MethodDefinition, implementation: (...args: unknown[]) => unknown) => unknown;

const require = createRequire(import.meta.url);
const niceGrpc = {
  unary: (require('nice-grpc/lib/server/handleUnaryCall.js') as { createUnaryMethodHandler: Handler }).createUnaryMethodHandler,
  serverStreaming: (require('nice-grpc/lib/server/handleServerStreamingCall.js') as { createServerStreamingMethodHandler: Handler })
    .createServerStreamingMethodHandler,
  definitions: require('nice-grpc/lib/service-definitions/index.js') as {
    normalizeServiceDefinition(d: CompatServiceDefinition): Record<string, MethodDefinition>;
    toGrpcJsServiceDefinition(d: Record<string, MethodDefinition>): Parameters<Server['addService']>[0];
  },
};

const PEER_TAG = 'unix-peer:';
let nextPeer = 0;
const peers = new Map<string, { readonly socket: Socket; lookup?: Promise<Peer | undefined> }>();

/**
 * The caller at the other end of the unix connection a call came in on (`peer` is nice-grpc's
 * `CallContext.peer`); undefined for tcp calls and when the kernel no longer knows the connection.
 */
export function peerOf(peer: string | undefined): Promise<Peer | undefined> {
  const entry = peer === undefined ? undefined : peers.get(peer);
  if (!entry) return Promise.resolve(undefined);
  if (!entry.lookup) {
    const fd = socketFd(entry.socket);
    entry.lookup = fd === undefined ? Promise.resolve(undefined) : peerOfFd(fd).catch(() => undefined);
  }
  return entry.lookup;
}

/**
 * The accepted unix socket a call came in on (`peer` is nice-grpc's `CallContext.peer`), for a check that
 * needs more than the netns (security/attest.ts: which process holds the other end); undefined for tcp
 * calls and once the connection closed.
 */
export function peerSocket(peer: string | undefined): Socket | undefined {
  return peer === undefined ? undefined : peers.get(peer)?.socket;
}

function tagUnixSocket(socket: Socket): void {
  const tag = `${PEER_TAG}${++nextPeer}`;
  Object.defineProperty(socket, 'remoteAddress', { value: tag, configurable: true });
  peers.set(tag, { socket });
  socket.once('close', () => peers.delete(tag));
}

/** grpc-js server whose unix connections carry a peer tag. Services are added before listening. */
export class PeerAwareServer {
  readonly #server: Server;
  readonly #unixListeners: NetServer[] = [];

  constructor(options: ChannelOptions) {
    this.#server = new Server(options);
  }

  /** `implementation` is a nice-grpc service implementation of `definition` (its methods by name). */
  add(definition: CompatServiceDefinition, implementation: object): void {
    const normalized = niceGrpc.definitions.normalizeServiceDefinition(definition);
    const methods = implementation as Record<string, (...args: unknown[]) => unknown>;
    const handlers: UntypedServiceImplementation = {};
    for (const [name, method] of Object.entries(normalized)) {
      if (method.requestStream) throw new Error(`${name}: client-streaming methods are not served by nsm-ts`);
      const impl = methods[name].bind(implementation);
      const create = method.responseStream ? niceGrpc.serverStreaming : niceGrpc.unary;
      handlers[name] = create(method, impl) as UntypedServiceImplementation[string];
    }
    this.#server.addService(niceGrpc.definitions.toGrpcJsServiceDefinition(normalized), handlers);
  }

  /** Listens on `host:port` (port 0 picks one); resolves to the port. */
  listenTcp(hostPort: string): Promise<number> {
    return new Promise((resolve, reject) =>
      this.#server.bindAsync(hostPort, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
  }

  /** Listens on the unix socket at `path` (which must not exist). */
  async listenUnix(path: string): Promise<void> {
    const injector = this.#server.createConnectionInjector(ServerCredentials.createInsecure());
    const listener = createNetServer((socket) => {
      tagUnixSocket(socket);
      injector.injectConnection(socket);
    });
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(path, () => (listener.off('error', reject), resolve()));
    });
    this.#unixListeners.push(listener);
  }

  /** Stops accepting, lets running calls finish. */
  shutdown(): Promise<void> {
    this.#closeListeners();
    return new Promise((resolve) => this.#server.tryShutdown(() => resolve()));
  }

  forceShutdown(): void {
    this.#closeListeners();
    this.#server.forceShutdown();
  }

  #closeListeners(): void {
    for (const l of this.#unixListeners.splice(0)) l.close();
  }
}
