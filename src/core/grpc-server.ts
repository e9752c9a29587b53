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
 * With mTLS (security/tls.ts) both unix sockets and tcp are accepted by a TLS server of our own, and each
 * verified TLS socket is injected into grpc-js as an already secured stream: its tag (`unix-peer:<n>`, or
 * `tcp-peer:<n>@<address>:<port>`) reaches the call as above, and the peer's SPIFFE ID and certificate are
 * kept with it (`peerIdentityOf`). grpc-js's own TLS servers would lose the tag of an injected unix socket
 * (a TLS socket over a pipe has no remote address) and nice-grpc's context has no auth context.
 *
 * nice-grpc keeps its handler factories internal; they are loaded from their files here (pinned version,
 * see package.json) so that calls behave exactly as under nice-grpc's own `createServer` — the unit test
 * of this file fails loudly if a nice-grpc upgrade moves them.
 */
import { createRequire } from 'node:module';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Server, ServerCredentials, type ChannelOptions, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { CompatServiceDefinition } from 'nice-grpc';
import { mtlsListener, type Mtls, type MtlsListener, type PeerIdentity, type TransportSecurity } from '../security/tls.js';
import { InvalidArgumentError } from './errors.js';
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

let nextPeer = 0;
interface PeerEntry {
  readonly socket: Socket;
  readonly unix: boolean;
  readonly identity?: PeerIdentity;
  lookup?: Promise<Peer | undefined>;
}
const peers = new Map<string, PeerEntry>();

/**
 * The caller at the other end of the unix connection a call came in on (`peer` is nice-grpc's
 * `CallContext.peer`); undefined for tcp calls and when the kernel no longer knows the connection.
 */
export function peerOf(peer: string | undefined): Promise<Peer | undefined> {
  const entry = peer === undefined ? undefined : peers.get(peer);
  if (!entry?.unix) return Promise.resolve(undefined);
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
  const entry = peer === undefined ? undefined : peers.get(peer);
  return entry?.unix ? entry.socket : undefined;
}

/**
 * The verified SPIFFE ID and certificate of the caller of an mTLS call (`call` is nice-grpc's
 * `CallContext`, or its `peer`); undefined for plaintext and in-process calls.
 */
export function peerIdentityOf(call: { readonly peer?: string } | string | undefined): PeerIdentity | undefined {
  const peer = typeof call === 'string' ? call : call?.peer;
  return peer === undefined ? undefined : peers.get(peer)?.identity;
}

/** A new peer tag for a socket (not yet registered). */
function newTag(socket: Socket, unix: boolean): string {
  return unix ? `unix-peer:${++nextPeer}` : `tcp-peer:${++nextPeer}@${socket.remoteAddress}:${socket.remotePort}`;
}

/** Gives `socket` the peer tag as its remote address (what grpc-js reports as the call's peer) and remembers it until it closes. */
function tagSocket(socket: Socket, unix: boolean, identity?: PeerIdentity): void {
  const tag = newTag(socket, unix);
  Object.defineProperty(socket, 'remoteAddress', { value: tag, configurable: true });
  Object.defineProperty(socket, 'remotePort', { value: undefined, configurable: true });
  peers.set(tag, { socket, unix, identity });
  socket.once('close', () => peers.delete(tag));
}

/**
 * grpc-js server whose unix connections (and, with mTLS, all connections) carry a peer tag. Services are
 * added before listening. `security` is mTLS from an X509Source or explicitly INSECURE.
 */
export class PeerAwareServer {
  readonly #server: Server;
  readonly #security: TransportSecurity;
  readonly #unixListeners: NetServer[] = [];
  readonly #tlsListeners: MtlsListener[] = [];

  constructor(options: ChannelOptions, security: TransportSecurity) {
    this.#server = new Server(options);
    this.#security = security;
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
  async listenTcp(hostPort: string): Promise<number> {
    if (this.#security.kind === 'mtls') {
      const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(hostPort);
      if (!m) throw new InvalidArgumentError('hostPort', hostPort, 'expected host:port');
      const listener = this.#listenTls(this.#security, false);
      await listen(listener.server, { host: m[1] ?? m[2], port: Number(m[3]) });
      const address = listener.server.address();
      return typeof address === 'object' && address ? address.port : Number(m[3]);
    }
    return new Promise((resolve, reject) =>
      this.#server.bindAsync(hostPort, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
  }

  /** Listens on the unix socket at `path` (which must not exist). */
  async listenUnix(path: string): Promise<void> {
    if (this.#security.kind === 'mtls') {
      await listen(this.#listenTls(this.#security, true).server, { path });
      return;
    }
    const injector = this.#server.createConnectionInjector(ServerCredentials.createInsecure());
    const listener = createNetServer((socket) => {
      tagSocket(socket, true);
      injector.injectConnection(socket);
    });
    await listen(listener, { path });
    this.#unixListeners.push(listener);
  }

  /**
   * A TLS listener whose verified sockets are tagged and injected into grpc-js as secured streams
   * (grpc-js reads plain HTTP/2 from them; the TLS below is ours).
   */
  #listenTls(security: Mtls, unix: boolean): MtlsListener {
    const injector = this.#server.createConnectionInjector(ServerCredentials.createInsecure());
    const listener = mtlsListener(
      security,
      (socket: TLSSocket, identity) => {
        // errors after the handshake end the HTTP/2 session; without a listener they would be thrown
        socket.on('error', () => {});
        tagSocket(socket, unix, identity);
        injector.injectConnection(socket);
      },
      (socket) => newTag(socket, unix),
    );
    this.#tlsListeners.push(listener);
    return listener;
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
    for (const l of this.#tlsListeners.splice(0)) l.close();
  }
}

function listen(server: NetServer, at: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at, () => (server.off('error', reject), resolve()));
  });
}
