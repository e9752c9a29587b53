/**
 * mTLS for every gRPC hop (issue 13), server and client, over unix sockets and tcp alike, from an
 * `X509Source` (security/svid.ts): TLS ≥ 1.2, a client certificate required, the peer's chain verified by
 * OpenSSL against the trust bundle of our own trust domain, no hostname check, and then the SPIFFE checks:
 * the peer's leaf has exactly one URI SAN, a SPIFFE ID of our trust domain, and is not a CA (upstream
 * authorizes any ID of the trust domain at this layer; a client may ask for one exact server ID).
 *
 * A server or a channel is either `mtls(source)` or explicitly `INSECURE` (what `NSM_INSECURE=true` chooses
 * at the component edge); nothing falls back from one to the other: a TLS server refuses plaintext, a TLS
 * channel refuses a plaintext server, and neither serves nor dials before the source has its first SVID.
 *
 * Rotation: the TLS contexts are built once per X509Material (memoized on the object), so a new SVID or
 * bundle is used by the next handshake; connections already up keep theirs, so no call or monitor stream
 * is dropped. Servers get the new context through `tls.Server#setSecureContext`, channels read the
 * current material at each connect.
 *
 * Server side: a `tls.Server` does the handshake (OpenSSL verifies the chain, Node reports it as
 * `authorized`), then the SPIFFE checks; a socket that passes is handed to the caller (core/grpc-server.ts
 * injects it into grpc-js), one that fails is closed and logged once with the peer and the reason. Client
 * side: `MtlsChannelCredentials`, grpc-js channel credentials whose connector does the handshake itself
 * (not grpc-js's CertificateProvider credentials: those cannot require TLS 1.2, build a context per
 * connection, and hide chain errors from us) and records the server's identity when a handshake completes.
 */
import type { X509Certificate } from 'node:crypto';
import {
  connect as tlsConnect,
  createSecureContext,
  createServer as createTlsServer,
  type SecureContext,
  type SecureContextOptions,
  type Server as TlsServer,
  type TLSSocket,
} from 'node:tls';
import type { Socket } from 'node:net';
import { ChannelCredentials, credentials as grpcCredentials, type CallCredentials, type experimental } from '@grpc/grpc-js';
import { InvalidArgumentError, PermissionDeniedError, UnavailableError, errorMessage } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/log.js';
import { certInfo, spiffeIdOf } from './x509.js';
import { trustDomainOf, type X509Material, type X509Source, type X509Svid } from './svid.js';

/** How many of our latest SVIDs are remembered to tell which one a connection presented. */
const RECENT_SVIDS = 4;

/** The lowest TLS version either side accepts. */
export const MIN_TLS_VERSION = 'TLSv1.2';
/** How long a TLS handshake may take before the connection is closed (slowloris bound). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const MIN_HANDSHAKE_TIMEOUT_MS = 100;
export const MAX_HANDSHAKE_TIMEOUT_MS = 120_000;

/** The verified identity of the other end of an mTLS connection. */
export interface PeerIdentity {
  /** `spiffe://<trust-domain>/<path>`, the one URI SAN of `certificate`. */
  readonly spiffeId: string;
  /** The peer's leaf certificate (its public key verifies the peer's path tokens). */
  readonly certificate: X509Certificate;
  /**
   * Our own SVID as presented to this peer in the same handshake: the key the peer verifies our tokens
   * with for as long as this connection lives (an SVID rotated since is not what the peer holds).
   */
  readonly presented?: X509Svid;
}

/** Plaintext, chosen explicitly (`NSM_INSECURE=true`). */
export interface InsecureTransport {
  readonly kind: 'insecure';
}

export const INSECURE: InsecureTransport = Object.freeze({ kind: 'insecure' as const });

export interface MtlsOptions {
  /** Logs refused handshakes (warn) and failed context updates (error). */
  readonly log?: Logger;
  /** DEFAULT_HANDSHAKE_TIMEOUT_MS, within [MIN_HANDSHAKE_TIMEOUT_MS, MAX_HANDSHAKE_TIMEOUT_MS]. */
  readonly handshakeTimeoutMs?: number;
}

interface Contexts {
  readonly trustDomain: string;
  readonly server: SecureContextOptions;
  client?: SecureContext;
}

/** mTLS from an X509Source: what servers and channels need, rebuilt once per material. */
export class Mtls {
  readonly kind = 'mtls' as const;
  readonly log: Logger;
  readonly handshakeTimeoutMs: number;
  readonly #contexts = new WeakMap<X509Material, Contexts>();
  readonly #recent: X509Svid[] = [];

  constructor(
    readonly source: X509Source,
    options: MtlsOptions = {},
  ) {
    const timeout = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    if (!Number.isSafeInteger(timeout) || timeout < MIN_HANDSHAKE_TIMEOUT_MS || timeout > MAX_HANDSHAKE_TIMEOUT_MS) {
      throw new InvalidArgumentError('handshakeTimeoutMs', timeout, `must be whole milliseconds in [${MIN_HANDSHAKE_TIMEOUT_MS}, ${MAX_HANDSHAKE_TIMEOUT_MS}]`);
    }
    this.handshakeTimeoutMs = timeout;
    this.log = (options.log ?? silentLogger).child({ element: 'mtls' });
  }

  #of(material: X509Material): Contexts {
    let c = this.#contexts.get(material);
    if (!c) {
      c = contextsFor(material);
      this.#contexts.set(material, c);
      if (!this.#recent.includes(material.svid)) {
        this.#recent.unshift(material.svid);
        this.#recent.length = Math.min(this.#recent.length, RECENT_SVIDS);
      }
    }
    return c;
  }

  /** Which of our recent SVIDs has the certificate `cert` (what a server socket presented); undefined when none. */
  presentedSvid(cert: X509Certificate | undefined): X509Svid | undefined {
    if (!cert) return undefined;
    return this.#recent.find((s) => s.leaf.fingerprint256 === cert.fingerprint256);
  }

  /** Our trust domain and the options of a server's TLS context, as of the current material. */
  serverContext(): { trustDomain: string; options: SecureContextOptions } {
    const c = this.#of(this.source.current());
    return { trustDomain: c.trustDomain, options: c.server };
  }

  /** Our trust domain, the client TLS context and the SVID it presents, as of the current material. */
  clientContext(): { trustDomain: string; context: SecureContext; svid: X509Svid } {
    const material = this.source.current();
    const c = this.#of(material);
    c.client ??= createSecureContext(c.server);
    return { trustDomain: c.trustDomain, context: c.client, svid: material.svid };
  }
}

export type TransportSecurity = InsecureTransport | Mtls;

/** mTLS from `source` for servers (`serve`) and channels (`ChannelPool`). */
export function mtls(source: X509Source, options?: MtlsOptions): Mtls {
  return new Mtls(source, options);
}

/**
 * The transport security a component runs with: plaintext only when `insecure` is true (`NSM_INSECURE`),
 * otherwise mTLS from `source`, which must then be given (no silent plaintext).
 */
export function transportSecurity(opts: { insecure: boolean; source?: X509Source; log?: Logger; handshakeTimeoutMs?: number }): TransportSecurity {
  if (opts.insecure) return INSECURE;
  if (!opts.source) throw new InvalidArgumentError('NSM_INSECURE', 'false', 'mTLS needs an X.509 source (SPIFFE_ENDPOINT_SOCKET or the embedded issuer); set NSM_INSECURE=true for plaintext');
  return mtls(opts.source, { log: opts.log, handshakeTimeoutMs: opts.handshakeTimeoutMs });
}

function contextsFor(material: X509Material): Contexts {
  const trustDomain = trustDomainOf(material.svid.spiffeId);
  if (!trustDomain) throw new InvalidArgumentError('svid.spiffeId', material.svid.spiffeId, 'not a SPIFFE ID');
  const bundle = material.bundles.get(trustDomain);
  if (!bundle) throw new UnavailableError(`no trust bundle for our own trust domain "${trustDomain}" (have: ${[...material.bundles.keys()].join(', ') || 'none'})`);
  return {
    trustDomain,
    server: Object.freeze({ ca: bundle, cert: material.svid.certChainPem, key: material.svid.keyPem, minVersion: MIN_TLS_VERSION }),
  };
}

/**
 * The SPIFFE ID of a peer's (chain-verified) leaf certificate when it is an SVID of `trustDomain` (and
 * `expectedId`, if given); otherwise why not.
 */
export function checkPeerCertificate(cert: X509Certificate, trustDomain: string, expectedId?: string): { problem: string } | { id: string } {
  let id: string;
  try {
    id = spiffeIdOf(cert, 'peer certificate');
  } catch (err) {
    return { problem: errorMessage(err) };
  }
  if (trustDomainOf(id) !== trustDomain) return { problem: `${id} is not in trust domain "${trustDomain}"` };
  if (certInfo(cert).isCa) return { problem: `${id}: the peer presented a CA certificate` };
  if (expectedId !== undefined && id !== expectedId) return { problem: `${id} is not the expected ${expectedId}` };
  return { id };
}

/** The identity of the peer of an established TLS socket; throws PermissionDeniedError naming the reason. */
export function verifiedPeer(socket: TLSSocket, trustDomain: string, expectedId?: string): PeerIdentity {
  const certificate = socket.getPeerX509Certificate();
  if (!certificate) throw new PermissionDeniedError('peer presented no certificate');
  if (!socket.authorized) throw new PermissionDeniedError(`peer certificate refused: ${String(socket.authorizationError ?? 'not verified')}`);
  const r = checkPeerCertificate(certificate, trustDomain, expectedId);
  if ('problem' in r) throw new PermissionDeniedError(`peer certificate refused: ${r.problem}`);
  return { spiffeId: r.id, certificate };
}

/** A short reason for a failed handshake: OpenSSL's reason and code rather than its full error string. */
export function handshakeFailure(err: unknown): string {
  const e = err as { reason?: unknown; code?: unknown; message?: unknown };
  if (typeof e?.reason === 'string' && typeof e.code === 'string') return `${e.reason} (${e.code})`;
  if (typeof e?.code === 'string' && typeof e.message === 'string' && !e.message.includes(e.code)) return `${e.message} (${e.code})`;
  return errorMessage(err);
}

// ---- Server ----------------------------------------------------------------------------------------

export interface MtlsListener {
  readonly server: TlsServer;
  /** Stops accepting and stops following rotations; connections already handed over stay up. */
  close(): void;
}

/** The URL a listening server is reached at, for logs. */
function listeningUrl(server: TlsServer): string {
  const a = server.address();
  if (typeof a === 'string') return `unix://${a}`;
  return a ? `tcp://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` : 'not listening';
}

/**
 * A TLS server (not yet listening) that hands each verified connection to `accept` and closes (and logs
 * once, with `label(socket)` and the reason) every other. Throws UnavailableError when the source has no
 * material yet (await `source.ready()` first).
 */
export function mtlsListener(sec: Mtls, accept: (socket: TLSSocket, peer: PeerIdentity) => void, label: (socket: TLSSocket) => string): MtlsListener {
  const initial = sec.serverContext();
  let trustDomain = initial.trustDomain;
  const server = createTlsServer({
    ...initial.options,
    requestCert: true,
    // the chain is checked below, so that a refusal is logged with its reason (Node would close silently)
    rejectUnauthorized: false,
    ALPNProtocols: ['h2'],
    handshakeTimeout: sec.handshakeTimeoutMs,
  });
  const refuse = (socket: TLSSocket, reason: string) => {
    sec.log.warn({ listener: listeningUrl(server), peer: label(socket), reason }, 'mTLS handshake refused');
    socket.destroy();
  };
  let closed = false;
  server.on('secureConnection', (socket: TLSSocket) => {
    // a handshake that ends after close() finds nothing to serve it
    if (closed) return void socket.destroy();
    // grpc-js serves HTTP/2 only to a socket that negotiated it (it would hang up later, unlogged)
    if (socket.alpnProtocol !== 'h2') return refuse(socket, `the client did not negotiate HTTP/2 by ALPN (got ${String(socket.alpnProtocol)})`);
    let peer: PeerIdentity;
    try {
      peer = verifiedPeer(socket, trustDomain);
    } catch (err) {
      return refuse(socket, errorMessage(err));
    }
    accept(socket, { ...peer, presented: sec.presentedSvid(socket.getX509Certificate()) });
  });
  server.on('tlsClientError', (err: Error, socket: TLSSocket) => refuse(socket, handshakeFailure(err)));
  const unsubscribe = sec.source.onUpdate(() => {
    try {
      const next = sec.serverContext();
      server.setSecureContext(next.options);
      trustDomain = next.trustDomain;
    } catch (err) {
      sec.log.error({ listener: listeningUrl(server), err: errorMessage(err) }, 'rotated X.509 material not usable; handshakes keep the previous one');
    }
  });
  return {
    server,
    close() {
      closed = true;
      unsubscribe();
      server.close();
    },
  };
}

// ---- Client ----------------------------------------------------------------------------------------

type SecureConnector = experimental.SecureConnector;
type SecureConnectResult = experimental.SecureConnectResult;

/**
 * grpc-js channel credentials for mTLS from an X509Source: every new connection uses the current SVID and
 * bundle, verifies the server's chain and SPIFFE ID (any of our trust domain, or `expectServerId`), and
 * records the server's identity (`serverIdentity`) before the connection carries a call.
 */
export class MtlsChannelCredentials extends ChannelCredentials {
  readonly #sec: Mtls;
  readonly #target: string;
  readonly #expectServerId?: string;
  #server?: PeerIdentity;

  constructor(sec: Mtls, opts: { target: string; expectServerId?: string }) {
    super();
    this.#sec = sec;
    this.#target = opts.target;
    if (opts.expectServerId !== undefined && !trustDomainOf(opts.expectServerId)) throw new InvalidArgumentError('expectServerId', opts.expectServerId, 'not a SPIFFE ID');
    this.#expectServerId = opts.expectServerId;
  }

  /** The server's identity as of the latest completed handshake of this channel; undefined before the first. */
  get serverIdentity(): PeerIdentity | undefined {
    return this.#server;
  }

  _isSecure(): boolean {
    return true;
  }

  _equals(other: ChannelCredentials): boolean {
    return other === this;
  }

  _createSecureConnector(_target: unknown, _options: unknown, callCredentials?: CallCredentials): SecureConnector {
    const calls = callCredentials ?? grpcCredentials.createEmpty();
    return {
      connect: (socket) => this.#connect(socket),
      waitForReady: async () => void (await this.#sec.source.ready()),
      getCallCredentials: () => calls,
      destroy: () => {},
    };
  }

  #connect(socket: Socket): Promise<SecureConnectResult> {
    const sec = this.#sec;
    return new Promise((resolve, reject) => {
      let ctx: ReturnType<Mtls['clientContext']>;
      try {
        ctx = sec.clientContext();
      } catch (err) {
        return reject(err);
      }
      const tls = tlsConnect({ socket, secureContext: ctx.context, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
      const timer = setTimeout(() => fail(new UnavailableError(`TLS handshake not done within ${sec.handshakeTimeoutMs} ms`)), sec.handshakeTimeoutMs);
      const done = () => {
        clearTimeout(timer);
        tls.off('error', fail);
        tls.off('close', closed);
      };
      const fail = (err: Error) => {
        done();
        sec.log.warn({ target: this.#target, reason: handshakeFailure(err) }, 'mTLS handshake with server refused');
        tls.destroy();
        reject(err);
      };
      const closed = () => fail(new UnavailableError('connection closed during the TLS handshake'));
      tls.once('error', fail);
      tls.once('close', closed);
      tls.once('secureConnect', () => {
        try {
          this.#server = { ...verifiedPeer(tls, ctx.trustDomain, this.#expectServerId), presented: ctx.svid };
        } catch (err) {
          return fail(err as Error);
        }
        done();
        resolve({ socket: tls, secure: true });
      });
    });
  }
}

/** Channel credentials for `target` (used in logs): mTLS from `security`, or plaintext when INSECURE. */
export function channelCredentials(security: TransportSecurity, opts: { target: string; expectServerId?: string }): ChannelCredentials {
  return security.kind === 'insecure' ? grpcCredentials.createInsecure() : new MtlsChannelCredentials(security, opts);
}
