/**
 * Sandbox: an in-process mesh for tier-2 tests (upstream `sdk:pkg/tools/sandbox`). One registry and N nodes
 * (nsmgr + forwarder on a fake data plane per node), plus endpoints and clients added by the test, all
 * started with the real `start*` functions of the components and talking real gRPC over unix sockets in a
 * temp dir — exactly as the processes do, minus the kernel.
 *
 *   const sb = await sandbox({ nodes: 1 });
 *   t.after(() => sb.close());
 *   await sb.addEndpoint({ name: 'nse-1', services: ['svc'], cidr: '172.16.1.100/31' });
 *   const nsc = await sb.addClient({ name: 'nsc-1', networkServices: ['kernel://svc/nsm-1'] });
 *   const [conn] = await nsc.connected;
 *
 * Nodes are joined as upstream's are: with more than one node (or `tcp: true`) each nsmgr also listens on
 * tcp (`127.0.0.1`, a free port picked at start, kept across restarts) — its public URL, under which the registry lists the node's endpoints —
 * and each forwarder has a tunnel IP (`127.0.0.<index+1>`, an address of this host's loopback), so a
 * client on node 0 reaches an endpoint on node 1 through 6 path segments (NSC, nsmgr-0, forwarder-0,
 * nsmgr-1, forwarder-1, NSE) over VXLAN (payload ETHERNET) or WireGuard (payload IP). Each node's fake
 * data plane is its own modelled kernel (`SandboxDataPlane.tunnels` lists the tunnel ends it holds); the
 * fake probe does not see tunnel ends, so a remote client should be started with `probe: false`.
 *
 * Every server (registry, nsmgr, forwarder, NSE) is a {@link SandboxServer}: `sb.kill(s)` stops it,
 * `sb.restart(s)` starts it again on the same URL with the same config and name (fresh state, as a
 * restarted process). Clients get the node's fake data plane as probe unless told otherwise, checked
 * every 50 ms (`NSM_LIVENESS_CHECK_INTERVAL`; override through `env`).
 * `close()` stops everything, newest first, and removes the temp dir. Logs are silent unless
 * `NSM_SANDBOX_LOG` names a level (e.g. `NSM_SANDBOX_LOG=debug`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'nice-grpc';
import type { MonitorScopeSelector } from '../api/gen/connection.js';
import { NetworkService, NetworkServiceEndpoint, NetworkServiceEndpointRegistryDefinition, NetworkServiceRegistryDefinition } from '../api/gen/registry.js';
import { createLogger, parseLogLevel, silentLogger, type Logger } from '../core/log.js';
import { linkSignals } from '../core/signals.js';
import { ChannelPool } from '../core/transport.js';
import { FakeDataPlane } from '../dataplane/fake/index.js';
import { fakeProbe } from '../dataplane/fake/probe.js';
import type { DataPlaneProbe } from '../dataplane/probe.js';
import type { OpOptions, OwnedLink, PairSpec, PairState, TunnelSpec, TunnelState } from '../dataplane/types.js';
import { forwarderConfig, startForwarder, type RunningForwarder } from '../components/forwarder/index.js';
import { nscConfig, startNsc, type RunningNsc } from '../components/nsc/index.js';
import { nseConfig, startNse, type RunningNse } from '../components/nse/index.js';
import { nsmgrConfig, startNsmgr, type RunningNsmgr } from '../components/nsmgr/index.js';
import { registryConfig, startRegistry, type RunningRegistry } from '../components/registry/index.js';
import { recordMonitor, type MonitorRecorder } from './monitor-recorder.js';
import { INSECURE } from '../security/tls.js';

/**
 * The sandbox's clients and endpoints live in this process and name `fake://` network namespaces that no
 * process is in: its nsmgrs and forwarders trust every caller (test/netns-binding.test.ts checks the
 * binding on real processes).
 */
const FAKE_NETNS_WORLD = { trusted: () => true, trustEndpoints: true } as const;

export type { MonitorRecorder } from './monitor-recorder.js';

type Env = Readonly<Record<string, string>>;

export interface SandboxOptions {
  /** Number of nodes (nsmgr + forwarder each). Default 1. */
  readonly nodes?: number;
  /**
   * nsmgrs also listen on tcp (their public URL, under which the registry lists their endpoints), as
   * nodes must for remote connections. Default: when there is more than one node. (With it, an nsmgr
   * restart hides its endpoints from discover until they re-register: see the remote sandbox tests.)
   */
  readonly tcp?: boolean;
  /** NSE registration lifetime in the registry (`NSM_EXPIRE_PERIOD`). Default `1m`. */
  readonly registryExpiry?: string;
  /** `NSM_MAX_TOKEN_LIFETIME` of every component (drives refresh and timeouts). Default `10m`. */
  readonly tokenLifetime?: string;
  /** NSC `NSM_REQUEST_TIMEOUT`. Default `5s`. */
  readonly requestTimeout?: string;
  /** The data plane of node `index`'s forwarder. Default a new SandboxDataPlane. */
  readonly dataplane?: (index: number) => SandboxDataPlane;
  readonly log?: Logger;
}

/**
 * The fake data plane of a node, counting what the forwarder asks of it. Tunnel ends (remote
 * connections) are the fake's tunnel links; `tunnels` holds the spec last ensured per owner held now.
 * The links outlive a forwarder restart (`start()` forgets what is held, not the links), so a restarted
 * forwarder reads its WireGuard keys back with `tunnelPrivateKey` and adopts an unchanged end.
 */
export class SandboxDataPlane extends FakeDataPlane {
  /** `ensure` calls per owner (connection id): one per Request reaching the forwarder's xconnect. */
  readonly ensures = new Map<string, number>();
  /** Veth pairs created (fresh creates, not converges). */
  creates = 0;
  removes = 0;
  /** Tunnel ends held now, by owner: the last spec ensured. */
  readonly tunnels = new Map<string, TunnelSpec>();
  /** `ensureTunnel` calls per owner. */
  readonly tunnelEnsures = new Map<string, number>();
  /** Tunnel ends created (fresh creates, not converges). */
  tunnelCreates = 0;
  tunnelRemoves = 0;

  override async ensure(spec: PairSpec, opts?: OpOptions): Promise<PairState> {
    this.ensures.set(spec.owner, (this.ensures.get(spec.owner) ?? 0) + 1);
    const r = await super.ensure(spec, opts);
    if (r.nsc.created) this.creates++;
    return r;
  }

  override async remove(spec: PairSpec, opts?: OpOptions): Promise<void> {
    this.removes++;
    return super.remove(spec, opts);
  }

  override async ensureTunnel(spec: TunnelSpec, opts?: OpOptions): Promise<TunnelState> {
    this.tunnelEnsures.set(spec.owner, (this.tunnelEnsures.get(spec.owner) ?? 0) + 1);
    const r = await super.ensureTunnel(spec, opts);
    if (r.end.created) this.tunnelCreates++;
    this.tunnels.set(spec.owner, spec);
    return r;
  }

  override async removeTunnel(spec: TunnelSpec, opts?: OpOptions): Promise<void> {
    this.tunnelRemoves++;
    this.tunnels.delete(spec.owner);
    return super.removeTunnel(spec, opts);
  }

  override async start(opts?: OpOptions): Promise<OwnedLink[]> {
    this.tunnels.clear();
    return super.start(opts);
  }
}

/** A restartable server of the sandbox. `running` is undefined while killed. */
export interface SandboxServer<R = unknown> {
  readonly kind: 'registry' | 'nsmgr' | 'forwarder' | 'nse';
  readonly name: string;
  readonly url: string;
  /** The env-style config it is (re)started with. */
  readonly env: Env;
  readonly running: R | undefined;
}

export interface SandboxNode {
  readonly index: number;
  /** The forwarder's NSM_TUNNEL_IP. */
  readonly tunnelIp: string;
  /** nsmgr's public (tcp) URL, when it listens on tcp (`SandboxOptions.tcp`). */
  readonly nsmgrTcpUrl?: string;
  readonly nsmgr: SandboxServer<RunningNsmgr>;
  readonly forwarder: SandboxServer<RunningForwarder>;
  readonly dataplane: SandboxDataPlane;
}

export interface EndpointOptions {
  readonly name: string;
  /** `NSM_SERVICE_NAMES`. Default `['ns-1']`. */
  readonly services?: readonly string[];
  /** `NSM_CIDR_PREFIX`. Default `169.254.0.0/16`. */
  readonly cidr?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** `NSM_REGISTER_SERVICE`. Default true. */
  readonly registerService?: boolean;
  /** Node index. Default 0. */
  readonly node?: number;
  /** Extra `NSM_*` settings. */
  readonly env?: Env;
}

export interface ClientOptions {
  readonly name: string;
  /** `NSM_NETWORK_SERVICES` NSURLs, e.g. `kernel://svc/nsm-1?app=a`. */
  readonly networkServices: readonly string[];
  /** Data-plane probe for heal. Default: `fakeProbe` of the node's data plane; `false` = none. */
  readonly probe?: DataPlaneProbe | false;
  readonly node?: number;
  readonly env?: Env;
}

export interface SandboxClient extends RunningNsc {
  readonly name: string;
  /** The client's netns in the node's fake data plane (`fake://<name>`). */
  readonly netns: string;
  readonly node: SandboxNode;
}

export interface Sandbox {
  readonly dir: string;
  readonly registry: SandboxServer<RunningRegistry>;
  readonly nodes: readonly SandboxNode[];
  addEndpoint(opts: EndpointOptions): Promise<SandboxServer<RunningNse>>;
  /** Starts a client; await `client.connected` for its connections. */
  addClient(opts: ClientOptions): Promise<SandboxClient>;
  /** Registers a NetworkService with the registry directly (as `nsm apply -f netsvc.yaml`). */
  registerService(ns: Partial<NetworkService>): Promise<NetworkService>;
  /** Registers a NetworkServiceEndpoint with the registry directly (e.g. a peer the test plays). */
  registerEndpoint(nse: Partial<NetworkServiceEndpoint>): Promise<NetworkServiceEndpoint>;
  /** Records the MonitorConnections stream of a server (all connections unless `selector`). */
  monitor(server: SandboxServer, selector?: Partial<MonitorScopeSelector>): MonitorRecorder;
  kill(server: SandboxServer): Promise<void>;
  restart(server: SandboxServer): Promise<void>;
  close(): Promise<void>;
}

type Stoppable = { stop(): Promise<void> };

class Restartable<R extends Stoppable> implements SandboxServer<R> {
  running: R | undefined;
  constructor(
    readonly kind: SandboxServer['kind'],
    readonly name: string,
    readonly url: string,
    readonly env: Env,
    readonly start: () => Promise<R>,
  ) {}

  async up(): Promise<this> {
    if (!this.running) this.running = await this.start();
    return this;
  }

  async down(): Promise<void> {
    const r = this.running;
    this.running = undefined;
    await r?.stop();
  }
}

/** Starts the sandbox: the registry, then nsmgr and forwarder of each node. Stops what it started on failure. */
export async function sandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const sb = new SandboxMesh(options);
  try {
    await sb.start(options.nodes ?? 1);
  } catch (err) {
    await sb.close();
    throw err;
  }
  return sb;
}

/** The registry, the nodes and what the test added, in start order; `close()` stops them newest first. */
class SandboxMesh implements Sandbox {
  readonly dir = mkdtempSync(join(tmpdir(), 'nsm-sbx-'));
  registry!: SandboxServer<RunningRegistry>;
  nodes: readonly SandboxNode[] = [];
  readonly #options: SandboxOptions;
  readonly #log: Logger;
  /** Settings every component gets. */
  readonly #common: Env;
  readonly #pool = new ChannelPool(INSECURE);
  readonly #servers: Restartable<Stoppable>[] = [];
  readonly #clients: SandboxClient[] = [];
  readonly #recorders = new Set<MonitorRecorder>();

  constructor(options: SandboxOptions) {
    this.#options = options;
    const level = parseLogLevel(process.env.NSM_SANDBOX_LOG ?? '');
    this.#log = options.log ?? (level ? createLogger('sandbox', level) : silentLogger);
    this.#common = { NSM_MAX_TOKEN_LIFETIME: options.tokenLifetime ?? '10m', NSM_INSECURE: 'true' };
  }

  /** Starts the registry, then nsmgr and forwarder of each node (on its own fake data plane). */
  async start(nodes: number): Promise<void> {
    const registryEnv: Env = { ...this.#common, NSM_LISTEN_ON: this.#sock('registry'), NSM_EXPIRE_PERIOD: this.#options.registryExpiry ?? '1m' };
    this.registry = await this.#server('registry', 'registry', registryEnv, (e) => startRegistry(registryConfig.parse(e), { log: this.#componentLog('registry') }));
    const started: SandboxNode[] = [];
    const tcp = this.#options.tcp ?? nodes > 1;
    for (let i = 0; i < nodes; i++) started.push(await this.#startNode(i, tcp));
    this.nodes = started;
  }

  async #startNode(index: number, tcp: boolean): Promise<SandboxNode> {
    const nodeName = `node-${index}`;
    const nsmgrName = `nsmgr-${index}`;
    const nsmgrTcpUrl = tcp ? `tcp://127.0.0.1:${await freePort()}` : undefined;
    const listen = [this.#sock(nsmgrName), ...(nsmgrTcpUrl ? [nsmgrTcpUrl] : [])].join(',');
    const nsmgrEnv: Env = { ...this.#common, NSM_NAME: nsmgrName, NSM_LISTEN_ON: listen, NSM_REGISTRY_URL: this.registry.url, NODE_NAME: nodeName };
    const nsmgr = await this.#server('nsmgr', nsmgrName, nsmgrEnv, (e) => startNsmgr(nsmgrConfig.parse(e), { log: this.#componentLog(nsmgrName), netnsBinding: FAKE_NETNS_WORLD }));
    const dataplane = this.#options.dataplane?.(index) ?? new SandboxDataPlane();
    const fwdName = `forwarder-${index}`;
    const tunnelIp = `127.0.0.${index + 1}`;
    const fwdEnv: Env = { ...this.#common, NSM_NAME: fwdName, NSM_LISTEN_ON: this.#sock(fwdName), NSM_CONNECT_TO: nsmgr.url, NODE_NAME: nodeName, NSM_TUNNEL_IP: tunnelIp };
    const forwarder = await this.#server('forwarder', fwdName, fwdEnv, (e) =>
      startForwarder(forwarderConfig.parse(e), { log: this.#componentLog(fwdName), dataplane, netnsBinding: FAKE_NETNS_WORLD }),
    );
    return { index, tunnelIp, nsmgrTcpUrl, nsmgr, forwarder, dataplane };
  }

  async addEndpoint(o: EndpointOptions): Promise<SandboxServer<RunningNse>> {
    const env: Env = {
      ...this.#common,
      NSM_NAME: o.name,
      NSM_CONNECT_TO: this.#nodeAt(o.node).nsmgr.url,
      NSM_LISTEN_ON: this.#sock(o.name),
      NSM_SERVICE_NAMES: (o.services ?? ['ns-1']).join(','),
      NSM_CIDR_PREFIX: o.cidr ?? '169.254.0.0/16',
      NSM_LABELS: Object.entries(o.labels ?? {}).map(([k, v]) => `${k}:${v}`).join(','),
      NSM_REGISTER_SERVICE: String(o.registerService ?? true),
      ...o.env,
    };
    const nse = await this.#server('nse', o.name, env, (e) => startNse(nseConfig.parse(e), { log: this.#componentLog(o.name), netnsUrl: `fake://${o.name}` }));
    await nse.running!.registered;
    return nse;
  }

  async addClient(o: ClientOptions): Promise<SandboxClient> {
    const node = this.#nodeAt(o.node);
    const env: Env = {
      ...this.#common,
      NSM_NAME: o.name,
      NSM_CONNECT_TO: node.nsmgr.url,
      NSM_NETWORK_SERVICES: o.networkServices.join(','),
      NSM_REQUEST_TIMEOUT: this.#options.requestTimeout ?? '5s',
      NSM_LIVENESS_CHECK_INTERVAL: '50ms',
      ...o.env,
    };
    const config = nscConfig.parse(env);
    const probe = o.probe === false ? undefined : (o.probe ?? fakeProbe(node.dataplane, { interval: config.livenessCheckInterval }));
    const netns = `fake://${o.name}`;
    const running = await startNsc(config, { log: this.#componentLog(o.name), netnsUrl: netns, probe });
    const c: SandboxClient = { ...running, name: o.name, netns, node };
    this.#clients.push(c);
    return c;
  }

  async registerService(ns: Partial<NetworkService>): Promise<NetworkService> {
    const client = createClient(NetworkServiceRegistryDefinition, this.#pool.get(this.registry.url));
    const link = linkSignals([], 5000);
    try {
      return await client.register(NetworkService.fromPartial(ns), { signal: link.signal });
    } finally {
      link.dispose();
    }
  }

  async registerEndpoint(nse: Partial<NetworkServiceEndpoint>): Promise<NetworkServiceEndpoint> {
    const client = createClient(NetworkServiceEndpointRegistryDefinition, this.#pool.get(this.registry.url));
    const link = linkSignals([], 5000);
    try {
      return await client.register(NetworkServiceEndpoint.fromPartial(nse), { signal: link.signal });
    } finally {
      link.dispose();
    }
  }

  monitor(s: SandboxServer, selector: Partial<MonitorScopeSelector> = {}): MonitorRecorder {
    const rec = recordMonitor(this.#pool.get(s.url), s.name, selector, () => this.#recorders.delete(rec));
    this.#recorders.add(rec);
    return rec;
  }

  kill(s: SandboxServer): Promise<void> {
    return this.#own(s).down();
  }

  async restart(s: SandboxServer): Promise<void> {
    const r = this.#own(s);
    await r.down();
    await r.up();
  }

  async close(): Promise<void> {
    for (const r of [...this.#recorders]) r.stop();
    for (const c of this.#clients.splice(0).reverse()) await c.stop().catch(() => undefined);
    for (const s of this.#servers.splice(0).reverse()) await s.down().catch(() => undefined);
    this.#pool.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  #sock(name: string): string {
    return `unix://${join(this.dir, `${name}.sock`)}`;
  }

  #componentLog(component: string): Logger {
    return this.#log.child({ component });
  }

  async #server<R extends Stoppable>(kind: SandboxServer['kind'], name: string, env: Env, start: (env: Env) => Promise<R>): Promise<Restartable<R>> {
    // the first listen URL (nsmgr's unix socket; its tcp URL is the node's nsmgrTcpUrl)
    const s = new Restartable<R>(kind, name, env.NSM_LISTEN_ON!.split(',')[0], env, () => start(env));
    this.#servers.push(s as unknown as Restartable<Stoppable>);
    return s.up();
  }

  #own(s: SandboxServer): Restartable<Stoppable> {
    const r = this.#servers.find((x) => x === s);
    if (!r) throw new Error(`${s.kind} ${s.name} is not part of this sandbox`);
    return r;
  }

  #nodeAt(i = 0): SandboxNode {
    const n = this.nodes[i];
    if (!n) throw new Error(`sandbox has no node ${i} (nodes: ${this.nodes.length})`);
    return n;
  }
}

/** A tcp port free on 127.0.0.1 now (the OS picks it; the nsmgr binds it again right after). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
