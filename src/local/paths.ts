/**
 * Run directory of the local mesh: one folder holds the sockets, the state file, the pod status files
 * and the logs. The default matches upstream's default socket (`unix:///var/lib/networkservicemesh/nsm.io.sock`),
 * so a plain `ip netns exec POD nsm nsc` reaches the local nsmgr without any env var.
 *
 * ```
 * <run-dir>/registry.sock        registry      (NSM_LISTEN_ON of `nsm registry`)
 * <run-dir>/nsm.io.sock          nsmgr         (NSM_LISTEN_ON of `nsm nsmgr`, NSM_CONNECT_TO of nsc/nse/forwarder)
 * <run-dir>/forwarder.sock       forwarder     (NSM_LISTEN_ON of `nsm forwarder`)
 * <run-dir>/agent.sock           the mesh's SPIFFE Workload API (SPIFFE_ENDPOINT_SOCKET of every component and pod)
 * <run-dir>/ca/root.pem, root.key  the embedded CA (key 0600, dir 0700); removed by `nsm down`
 * <run-dir>/mesh.json            state: supervisor, components, pods (written atomically)
 * <run-dir>/pods/<pod>-<c>.json  status file of a pod process (NSM_STATUS_FILE)
 * <run-dir>/logs/<name>.log      supervisor.log, registry.log, nsmgr.log, forwarder.log, <pod>-<c>.log
 * ```
 *
 * A mesh of nodes (`nsm up --nodes N`, local/nodes.ts) keeps registry.sock, agent.sock, ca/, mesh.json,
 * pods/ and logs/ as above, and gives each node its own sockets instead of nsm.io.sock and forwarder.sock:
 * ```
 * <run-dir>/nodes/<node>/nsm.io.sock     that node's nsmgr
 * <run-dir>/nodes/<node>/forwarder.sock  that node's forwarder
 * <run-dir>/logs/<node>-nsmgr.log, <node>-forwarder.log
 * ```
 */
import { isAbsolute, join, resolve } from 'node:path';

export const DEFAULT_RUN_DIR = '/var/lib/networkservicemesh';
export const RUN_DIR_ENV = 'NSM_RUN_DIR';

export const COMPONENTS = ['registry', 'nsmgr', 'forwarder'] as const;
export type ComponentName = (typeof COMPONENTS)[number];

/** Trust domain of the embedded issuer: IDs are `spiffe://nsm.local/node/<node>/<component>` and `…/ns/<pod>/<what>`. */
export const EMBEDDED_TRUST_DOMAIN = 'nsm.local';

/** How a mesh runs: mTLS with SVIDs from its own Workload API (the default), or plaintext (`nsm up --insecure`). */
export type MeshSecurity = 'mtls' | 'insecure';

export const POD_COMPONENTS = ['nsc', 'nse'] as const;
export type PodComponent = (typeof POD_COMPONENTS)[number];

export interface RunPaths {
  readonly dir: string;
  readonly state: string;
  readonly lock: string;
  readonly logs: string;
  readonly pods: string;
  readonly sockets: Readonly<Record<ComponentName, string>>;
  /** The mesh's SPIFFE Workload API (served by the supervisor when the mesh is secure). */
  readonly agentSocket: string;
  readonly ca: { readonly dir: string; readonly cert: string; readonly key: string };
  log(name: string): string;
  podStatus(pod: string, component: string): string;
  /** The sockets of a node's nsmgr and forwarder in a mesh of nodes. */
  nodeSockets(node: string): { readonly dir: string; readonly nsmgr: string; readonly forwarder: string };
}

/** Resolves the run dir: flag, then `NSM_RUN_DIR`, then the upstream default. */
export function resolveRunDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  const raw = flag || env[RUN_DIR_ENV] || DEFAULT_RUN_DIR;
  return isAbsolute(raw) ? raw : resolve(raw);
}

export function runPaths(dir: string): RunPaths {
  const logs = join(dir, 'logs');
  const pods = join(dir, 'pods');
  return Object.freeze({
    dir,
    state: join(dir, 'mesh.json'),
    lock: join(dir, 'mesh.lock'),
    logs,
    pods,
    sockets: Object.freeze({
      registry: join(dir, 'registry.sock'),
      nsmgr: join(dir, 'nsm.io.sock'),
      forwarder: join(dir, 'forwarder.sock'),
    }),
    agentSocket: join(dir, 'agent.sock'),
    ca: Object.freeze({ dir: join(dir, 'ca'), cert: join(dir, 'ca', 'root.pem'), key: join(dir, 'ca', 'root.key') }),
    log: (name: string) => join(logs, `${name}.log`),
    podStatus: (pod: string, component: string) => join(pods, `${pod}-${component}.json`),
    nodeSockets: (node: string) => {
      const d = join(dir, 'nodes', node);
      return Object.freeze({ dir: d, nsmgr: join(d, 'nsm.io.sock'), forwarder: join(d, 'forwarder.sock') });
    },
  });
}

/**
 * How a component or pod process gets its identity: `SPIFFE_ENDPOINT_SOCKET` of the mesh's Workload API, or
 * `NSM_INSECURE=true` when the mesh runs plaintext.
 */
export function identityEnv(paths: RunPaths, security: MeshSecurity): Record<string, string> {
  return security === 'insecure' ? { NSM_INSECURE: 'true' } : { SPIFFE_ENDPOINT_SOCKET: `unix://${paths.agentSocket}` };
}

/** The env each node component gets from the supervisor; computed once, so a restart keeps the same env. */
export function componentEnv(paths: RunPaths, name: ComponentName, hostname: string, security: MeshSecurity = 'mtls'): Record<string, string> {
  return { ...nodeEnv(paths, name, hostname), ...identityEnv(paths, security) };
}

function nodeEnv(paths: RunPaths, name: ComponentName, hostname: string): Record<string, string> {
  const sock = (c: ComponentName) => `unix://${paths.sockets[c]}`;
  switch (name) {
    case 'registry':
      return { NSM_LISTEN_ON: sock('registry'), NODE_NAME: hostname };
    case 'nsmgr':
      return { NSM_LISTEN_ON: sock('nsmgr'), NSM_REGISTRY_URL: sock('registry'), NSM_NAME: `nsmgr-${hostname}`, NODE_NAME: hostname };
    case 'forwarder':
      return { NSM_CONNECT_TO: sock('nsmgr'), NSM_LISTEN_ON: sock('forwarder'), NSM_NAME: `forwarder-${hostname}`, NODE_NAME: hostname };
  }
}

/** Pod names are netns names: short, no slashes or spaces. */
export const POD_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
