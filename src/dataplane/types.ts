/**
 * The data-plane interface: what the forwarder asks of the kernel for one connection, independent of
 * how it is done (`linux/` programs real network namespaces, `fake/` keeps everything in memory).
 *
 * A connection owns one veth pair: the NSC end in the client's netns and the NSE end in the endpoint's
 * netns. Both links carry the alias `nsm-ts:<owner>:nsc` / `nsm-ts:<owner>:nse`, which is how ownership is
 * proven (on converge, on remove, and when a restarted forwarder takes inventory with `start()`).
 *
 * A data plane is one module that owns its state: it knows which owners (connection ids) it holds — an
 * owner is held from a successful `ensure` until `remove` is called — and at start it takes inventory of
 * the links a previous instance left, adopting those whose owner is ensured again and removing the rest
 * on `collectOrphans()`.
 *
 * Guarantees of every implementation (checked by `contract.ts`):
 * - `ensure` converges to the spec and is idempotent: a healthy pair is never recreated (name, MAC and
 *   ifindex stay), a converged pair gives `actions: []`. An existing pair of the owner (e.g. one found by
 *   `start()`) is adopted as it is.
 * - A link with the requested name (either end) that nsm-ts does not own, or that carries the alias of
 *   another connection that is live (held, or with an operation running), is never touched: `ensure`
 *   fails with an `AlreadyExistsError` naming the interface, the netns and the owner, and changes
 *   nothing. A link of another connection that is not live (an orphan) is replaced.
 * - A failed fresh create leaves nothing behind; the error's `step` names what failed.
 * - `remove` deletes exactly what `owner` owns; missing links are success.
 * - `held()` lists exactly the owners ensured successfully and not removed since (since `start()`).
 * - `collectOrphans()` removes only links found by the last `start()` whose owner is not held and which
 *   still carry the same alias; it acts once per `start()`.
 * - `sweepOrphans()` (periodic) looks only where this data plane has put or found links; it removes a link
 *   only when its owner is neither held nor busy (an ensure or remove of it running) and the previous
 *   sweep saw the same link (same name, alias, ifindex and MAC) orphaned too; at most `limit` per sweep.
 * - Operations on one owner (ensure, remove, an orphan's removal) run one at a time.
 * - Per connection, `ensure` and `remove` read only that connection's own links (their cost does not grow
 *   with the number of other links in the netns).
 */

/** A route on an end. `via` set → gateway route with `onlink`; otherwise a link (scope link) route. */
export interface RouteSpec {
  prefix: string;
  via?: string;
}

export interface EndSpec {
  /**
   * The netns as the mechanism's `inodeURL` carries it: `inode://<dev>/<ino>`,
   * `file:///proc/<pid>/ns/net` or `file:///run/netns/<name>` (the fake accepts any string).
   */
  netns: string;
  /** Interface name in that netns (1–15 chars). */
  name: string;
  /** Addresses with prefix length, e.g. `172.16.1.101/32`, `fd00::101/128`. */
  addrs: string[];
  routes: RouteSpec[];
}

export interface PairSpec {
  /** Connection id; goes into both links' alias. No whitespace, quotes or backslashes. */
  owner: string;
  nsc: EndSpec;
  nse: EndSpec;
  /** MTU of both ends; left as the kernel default when unset. */
  mtu?: number;
}

/**
 * Kernel VXLAN between two nodes' tunnel IPs (mechanism `VXLAN`, payload ETHERNET). The device is created
 * in the data plane's tunnel netns (Linux option `tunnelNetns`, default the forwarder's own; the UDP
 * socket stays there) and moved into the pod's netns under the end's name.
 */
export interface VxlanTunnelSpec {
  kind: 'vxlan';
  /** VXLAN network identifier, 1..16777215; unique per (node, port) — the NSE-side forwarder picks it. */
  vni: number;
  /** This node's tunnel IP: an address of the forwarder's netns (NSM_TUNNEL_IP). */
  localIp: string;
  /** The peer node's tunnel IP. */
  remoteIp: string;
  /** UDP port of both ends (VXLAN_DEFAULT_PORT). */
  port: number;
}

/**
 * Userspace WireGuard (`wireguard-go`, configured over its UAPI socket) between two nodes' tunnel IPs
 * (mechanism `WIREGUARD`, payload IP). The process and its UDP socket live in the tunnel netns; its tun
 * device is moved into the pod's netns under the end's name. Keys are WireGuard base64 (44 chars).
 */
export interface WireguardTunnelSpec {
  kind: 'wireguard';
  /** This end's private key. */
  privateKey: string;
  peerPublicKey: string;
  localIp: string;
  /** UDP port this end listens on in the forwarder's netns (one per connection). */
  listenPort: number;
  remoteIp: string;
  remotePort: number;
}

/**
 * One end of a remote connection: the forwarder on each node holds only its own pod's end, a tunnel device
 * carrying the alias `nsm-ts:<owner>:<side>` like a veth end (so inventory, adoption and the orphan GC treat
 * it alike). `owner` is this hop's connection id.
 */
export interface TunnelSpec {
  owner: string;
  /** Which end this node holds: `nsc` on the client's node, `nse` on the endpoint's node. */
  side: Side;
  /** The pod end: netns, interface name, addresses, routes. */
  end: EndSpec;
  tunnel: VxlanTunnelSpec | WireguardTunnelSpec;
  /** MTU of the pod's interface (the overlay's cost already taken off); kernel default when unset. */
  mtu?: number;
}

export interface TunnelState {
  end: EndState;
  /** What this call changed, in order; empty when converged. */
  actions: string[];
}

export interface EndState {
  ifindex: number;
  mac: string;
  /** The link was created by this call. */
  created: boolean;
}

export interface PairState {
  nsc: EndState;
  nse: EndState;
  /** What this call changed, in order (e.g. `nsc: add address 172.16.1.101/32`); empty when converged. */
  actions: string[];
}

export type Side = 'nsc' | 'nse';

/** A link carrying an nsm-ts alias, found by `start()`. */
export interface OwnedLink {
  /** The netns holding the link (`inode://<dev>/<ino>` on Linux). */
  netns: string;
  name: string;
  owner: string;
  side: Side;
  ifindex: number;
  mac: string;
  /** Link kind as the kernel reports it: `veth`, `vxlan`, or `tun` (a WireGuard end). */
  kind?: string;
  /** A tunnel end's parameters as found (VNI and port of a VXLAN end; listen port of a WireGuard end). */
  tunnel?: { kind: 'vxlan' | 'wireguard'; vni?: number; port?: number };
}

export interface OpOptions {
  signal?: AbortSignal;
}

export interface SweepOptions extends OpOptions {
  /** Most links removed by one sweep (default DEFAULT_SWEEP_LIMIT in `inventory.ts`). */
  limit?: number;
}

/**
 * What `collectOrphans()` or `sweepOrphans()` did: orphan links gone now (removed, or gone with their
 * peer), and those whose removal failed (a sweep tries them again next time; collectOrphans does not).
 */
export interface OrphanReport {
  removed: OwnedLink[];
  failed: Array<{ link: OwnedLink; error: unknown }>;
}

export interface DataPlane {
  /** Creates the pair or converges it to `spec`; idempotent. On success `spec.owner` is held. */
  ensure(spec: PairSpec, opts?: OpOptions): Promise<PairState>;
  /**
   * Removes the links `spec.owner` owns (found by name, proven by alias); missing = success. The owner is
   * no longer held from the call on, whether or not the removal succeeds.
   */
  remove(spec: PairSpec, opts?: OpOptions): Promise<void>;
  /**
   * Creates or converges one end of a remote connection (see TunnelSpec); idempotent like `ensure`, same
   * ownership rules; a failed fresh create leaves nothing (no device, no wireguard-go process). On success
   * `spec.owner` is held.
   */
  ensureTunnel(spec: TunnelSpec, opts?: OpOptions): Promise<TunnelState>;
  /** Removes the tunnel end `spec.owner` owns (and its wireguard-go process); missing = success. */
  removeTunnel(spec: TunnelSpec, opts?: OpOptions): Promise<void>;
  /**
   * The private key of the WireGuard end `owner` owns now (read back from the device), if any: a restarted
   * forwarder keeps the keys of the tunnels it adopts.
   */
  tunnelPrivateKey(owner: string, opts?: OpOptions): Promise<string | undefined>;
  /** The owners held now, sorted. */
  held(): string[];
  /**
   * Takes inventory at the start of a forwarder's life: forgets what was held and finds every link with
   * an nsm-ts alias (in every netns on the machine for Linux). Returns what it found.
   */
  start(opts?: OpOptions): Promise<OwnedLink[]>;
  /**
   * Removes the links found by the last `start()` whose owner is not held now, each only if it still
   * carries the same alias. Later calls find nothing until the next `start()`.
   */
  collectOrphans(opts?: OpOptions): Promise<OrphanReport>;
  /**
   * One round of the periodic orphan GC: finds the nsm-ts links where this data plane has put or found
   * links, and removes those orphaned since the previous round (see the guarantees above).
   */
  sweepOrphans(opts?: SweepOptions): Promise<OrphanReport>;
}

/** What the kernel says about one interface (linux/inspect.ts reads it; the contract suite checks a subset). */
export interface InterfaceState {
  exists: boolean;
  up: boolean;
  carrier: boolean;
  operstate: string;
  ifindex: number;
  mac: string;
  mtu: number;
  alias?: string;
  /** Addresses other than link-local, as `ip/prefix`. */
  addrs: string[];
  /** Routes on the interface other than the kernel's own (prefix routes of addresses). */
  routes: RouteSpec[];
}
