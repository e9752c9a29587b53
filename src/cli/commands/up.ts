/** `nsm up`: start the local mesh (registry, nsmgr, forwarder under a supervisor), secure unless `--insecure`; `--nodes N` for N nodes. */
import type { Command } from 'commander';
import { action, addRunDirOption, durationOption, meshContext } from '../../local/cli.js';
import { nsmgrTcpUrl, registryTcpUrl } from '../../local/layout.js';
import { DEFAULT_UP_TIMEOUT_MS, up } from '../../local/mesh.js';
import { DEFAULT_UNDERLAY_CIDR, MAX_NODES, MIN_NODES, parseNodeCount, UNDERLAY_PREFIX_MAX, UNDERLAY_PREFIX_MIN } from '../../local/nodes.js';

export const INSECURE_WARNING =
  'WARNING: the mesh runs INSECURE (nsm up --insecure): every component has NSM_INSECURE=true — plaintext gRPC, no SPIFFE identities, path tokens nobody verifies. Anyone who can reach a socket can create or tear down connections.';

/** How much longer `up` waits by default for each node beyond the first. */
export const UP_TIMEOUT_PER_NODE_MS = 10_000;

export function register(program: Command): void {
  addRunDirOption(
    program
      .command('up')
      .description('start registry, nsmgr and forwarder on this host under a supervisor, with mTLS and SVIDs from the mesh\'s own Workload API (needs root)')
      .option('--timeout <duration>', `how long to wait for the components to serve (default ${DEFAULT_UP_TIMEOUT_MS / 1000}s, plus ${UP_TIMEOUT_PER_NODE_MS / 1000}s per node beyond the first)`)
      .option('--insecure', 'plaintext gRPC and unverified tokens: every component gets NSM_INSECURE=true (no Workload API, no CA)', false)
      .option(
        '--nodes <n>',
        `run ${MIN_NODES}..${MAX_NODES} nodes, each a network namespace with its own nsmgr and forwarder, joined by an underlay bridge in a netns of its own (nothing in the host netns); the registry runs on node-1`,
      )
      .option('--underlay-cidr <cidr>', `underlay network of --nodes: a private IPv4 /${UNDERLAY_PREFIX_MIN}../${UNDERLAY_PREFIX_MAX} the host does not use; node-<i> gets its i-th address (default ${DEFAULT_UNDERLAY_CIDR})`),
  ).action(
    action('up', async (opts: { runDir?: string; timeout?: string; insecure: boolean; nodes?: string; underlayCidr?: string }) => {
      const nodes = opts.nodes === undefined ? undefined : parseNodeCount(opts.nodes);
      const timeoutMs = opts.timeout !== undefined ? durationOption('--timeout', opts.timeout) : DEFAULT_UP_TIMEOUT_MS + UP_TIMEOUT_PER_NODE_MS * Math.max(0, (nodes ?? 1) - 1);
      const ctx = meshContext(opts.runDir);
      const res = await up(ctx, { timeoutMs, insecure: opts.insecure, nodes, underlayCidr: opts.underlayCidr });
      const mode = res.security === 'mtls' ? `mTLS, SVIDs from unix://${ctx.paths.agentSocket}` : 'INSECURE';
      const t = res.topology;
      if (res.already) {
        ctx.say(`mesh is already up (supervisor pid ${res.supervisor.pid}, run dir ${ctx.paths.dir}, security: ${mode}${t ? `, ${t.nodes.length} nodes` : ''})`);
        const mismatch: string[] = [];
        if ((res.security === 'insecure') !== opts.insecure) mismatch.push(`the running mesh is ${res.security === 'insecure' ? 'insecure' : 'secure'}`);
        if ((t?.nodes.length ?? undefined) !== nodes) mismatch.push(`the running mesh has ${t ? `${t.nodes.length} nodes (--nodes ${t.nodes.length})` : 'the one-node layout (no --nodes)'}`);
        if (mismatch.length > 0) {
          process.stderr.write(`nsm up: ${mismatch.join('; ')}; to change that: nsm down, then nsm up${opts.insecure ? ' --insecure' : ''}${nodes ? ` --nodes ${nodes}` : ''}\n`);
          process.exitCode = 1;
        }
      } else {
        ctx.say(`mesh is up (supervisor pid ${res.supervisor.pid}, run dir ${ctx.paths.dir})`);
        if (t) {
          ctx.say(`  underlay ${t.cidr}: bridge ${t.bridge} in netns ${t.underlayNetns}; registry unix://${ctx.paths.sockets.registry} and ${registryTcpUrl(t)} (node-1)`);
          for (const n of t.nodes) ctx.say(`  ${n.name}: netns ${n.netns}, ${n.address}; nsmgr unix://${ctx.paths.nodeSockets(n.name).nsmgr} and ${nsmgrTcpUrl(n)}`);
          ctx.say(`  logs: ${ctx.paths.logs}`);
        } else {
          ctx.say(`  nsmgr: unix://${ctx.paths.sockets.nsmgr}   registry: unix://${ctx.paths.sockets.registry}   logs: ${ctx.paths.logs}`);
        }
        if (res.security === 'mtls') {
          ctx.say(`  security: mTLS; SPIFFE Workload API unix://${ctx.paths.agentSocket}; CA ${ctx.paths.ca.dir} (${res.caCreated ? 'new' : 'kept from the last start'}), trust domain nsm.local`);
        }
      }
      if (res.security === 'insecure') process.stderr.write(`${INSECURE_WARNING}\n`);
    }),
  );
}
