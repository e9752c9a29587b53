/**
 * What the supervisor runs, as a list of component slots: id, node, netns, socket, log and the env each
 * component gets. Pure; computed once at start, so a restart keeps the same env.
 *
 * One node (`nsm up`): `registry`, `nsmgr`, `forwarder` in the host netns on the run dir's sockets, node =
 * the hostname (paths.ts `componentEnv`, unchanged).
 *
 * A mesh of nodes (`nsm up --nodes N`, topology from local/nodes.ts), every process inside its node's netns:
 * - `registry` (node-1): `NSM_LISTEN_ON=unix://<run>/registry.sock,tcp://<node-1 ip>:5002`, `NODE_NAME=node-1`
 * - `<node>/nsmgr`: `NSM_LISTEN_ON=unix://<run>/nodes/<node>/nsm.io.sock,tcp://<ip>:5001` (the tcp URL is its
 *   public URL), `NSM_REGISTRY_URL` = the registry's unix socket on node-1, `tcp://<node-1 ip>:5002` elsewhere,
 *   `NSM_NAME=nsmgr-<node>`, `NODE_NAME=<node>`
 * - `<node>/forwarder`: `NSM_CONNECT_TO=unix://<run>/nodes/<node>/nsm.io.sock`,
 *   `NSM_LISTEN_ON=unix://<run>/nodes/<node>/forwarder.sock`, `NSM_NAME=forwarder-<node>.<tag>` (unique on the
 *   host: it scopes the data plane's links), `NODE_NAME=<node>`,
 *   `NSM_TUNNEL_IP=<ip>`
 * plus the identity env of every component (`SPIFFE_ENDPOINT_SOCKET` or `NSM_INSECURE=true`).
 */
import { InvalidArgumentError } from '../core/errors.js';
import { NSMGR_TCP_PORT, REGISTRY_TCP_PORT, type NodeSpec, type Topology } from './nodes.js';
import { COMPONENTS, componentEnv, identityEnv, type ComponentName, type MeshSecurity, type RunPaths } from './paths.js';
import type { MeshState } from './state.js';

export interface ComponentSlot {
  /** Key in mesh.json: `registry`, `nsmgr`, `forwarder`, or `<node>/nsmgr`, `<node>/forwarder`. */
  readonly id: string;
  readonly name: ComponentName;
  /** NODE_NAME of the component; the `<node>` of its SPIFFE ID. */
  readonly node: string;
  /** The netns it runs in; absent: the host's (one-node layout). */
  readonly netns?: string;
  /** Its unix socket (health checks, stale-socket removal). */
  readonly socket: string;
  readonly log: string;
  /** Start group: all slots of a group start together, after the previous group serves. */
  readonly phase: number;
  readonly env: Readonly<Record<string, string>>;
}

const PHASE: Readonly<Record<ComponentName, number>> = { registry: 0, nsmgr: 1, forwarder: 2 };

/**
 * A node's forwarder name: `forwarder-<node>.<tag>`. Its data plane writes the name into its links' aliases
 * as its scope and collects orphans of that scope in every netns of the machine, so it must be unique on the
 * host: two meshes (two run dirs) both have a `node-1`, their tags differ.
 */
export const forwarderName = (t: Topology, n: NodeSpec): string => `forwarder-${n.name}.${t.tag}`;

export const registryTcpUrl = (t: Topology): string => `tcp://${t.nodes[0].address}:${REGISTRY_TCP_PORT}`;
export const nsmgrTcpUrl = (n: NodeSpec): string => `tcp://${n.address}:${NSMGR_TCP_PORT}`;

export function meshLayout(paths: RunPaths, hostname: string, security: MeshSecurity, topology?: Topology): ComponentSlot[] {
  if (!topology) {
    return COMPONENTS.map((name) => ({
      id: name,
      name,
      node: hostname,
      socket: paths.sockets[name],
      log: paths.log(name),
      phase: PHASE[name],
      env: componentEnv(paths, name, hostname, security),
    }));
  }
  const identity = identityEnv(paths, security);
  const first = topology.nodes[0];
  const slots: ComponentSlot[] = [
    {
      id: 'registry',
      name: 'registry',
      node: first.name,
      netns: first.netns,
      socket: paths.sockets.registry,
      log: paths.log('registry'),
      phase: 0,
      env: { NSM_LISTEN_ON: `unix://${paths.sockets.registry},${registryTcpUrl(topology)}`, NODE_NAME: first.name, ...identity },
    },
  ];
  for (const n of topology.nodes) {
    const s = paths.nodeSockets(n.name);
    const registryUrl = n === first ? `unix://${paths.sockets.registry}` : registryTcpUrl(topology);
    slots.push({
      id: `${n.name}/nsmgr`,
      name: 'nsmgr',
      node: n.name,
      netns: n.netns,
      socket: s.nsmgr,
      log: paths.log(`${n.name}-nsmgr`),
      phase: 1,
      env: { NSM_LISTEN_ON: `unix://${s.nsmgr},${nsmgrTcpUrl(n)}`, NSM_REGISTRY_URL: registryUrl, NSM_NAME: `nsmgr-${n.name}`, NODE_NAME: n.name, ...identity },
    });
    slots.push({
      id: `${n.name}/forwarder`,
      name: 'forwarder',
      node: n.name,
      netns: n.netns,
      socket: s.forwarder,
      log: paths.log(`${n.name}-forwarder`),
      phase: 2,
      env: {
        NSM_CONNECT_TO: `unix://${s.nsmgr}`,
        NSM_LISTEN_ON: `unix://${s.forwarder}`,
        NSM_NAME: forwarderName(topology, n),
        NODE_NAME: n.name,
        NSM_TUNNEL_IP: n.address,
        ...identity,
      },
    });
  }
  return slots.sort((a, b) => a.phase - b.phase);
}

/** The layout of the mesh a state describes. */
export function layoutOf(paths: RunPaths, state: MeshState | undefined, hostname: string): ComponentSlot[] {
  return meshLayout(paths, state?.hostname ?? hostname, state?.security ?? 'insecure', state?.topology);
}

/** The node names of a mesh: `node-1` … of its topology, or the one node (the hostname). */
export function nodeNamesOf(state: MeshState | undefined, hostname: string): string[] {
  return state?.topology ? state.topology.nodes.map((n) => n.name) : [state?.hostname ?? hostname];
}

/** Where a pod on `node` connects (NSM_CONNECT_TO) and its NODE_NAME; an unknown node names `--node` and lists the nodes. */
export function podNode(paths: RunPaths, state: MeshState | undefined, hostname: string, node: string | undefined): { node: string; nsmgrSocket: string } {
  const names = nodeNamesOf(state, hostname);
  const want = node ?? names[0];
  if (!names.includes(want)) throw new InvalidArgumentError('--node', want, `no such node in this mesh; its nodes: ${names.join(', ')}`);
  return { node: want, nsmgrSocket: state?.topology ? paths.nodeSockets(want).nsmgr : paths.sockets.nsmgr };
}
