/** `nsm up`: start the local mesh (registry, nsmgr, forwarder under a supervisor), secure unless `--insecure`. */
import type { Command } from 'commander';
import { action, addRunDirOption, durationOption, meshContext } from '../../local/cli.js';
import { DEFAULT_UP_TIMEOUT_MS, up } from '../../local/mesh.js';

export const INSECURE_WARNING =
  'WARNING: the mesh runs INSECURE (nsm up --insecure): every component has NSM_INSECURE=true — plaintext gRPC, no SPIFFE identities, path tokens nobody verifies. Anyone who can reach a socket can create or tear down connections.';

export function register(program: Command): void {
  addRunDirOption(
    program
      .command('up')
      .description('start registry, nsmgr and forwarder on this host under a supervisor, with mTLS and SVIDs from the mesh\'s own Workload API (needs root)')
      .option('--timeout <duration>', 'how long to wait for the components to serve', `${DEFAULT_UP_TIMEOUT_MS / 1000}s`)
      .option('--insecure', 'plaintext gRPC and unverified tokens: every component gets NSM_INSECURE=true (no Workload API, no CA)', false),
  ).action(
    action('up', async (opts: { runDir?: string; timeout: string; insecure: boolean }) => {
      const timeoutMs = durationOption('--timeout', opts.timeout);
      const ctx = meshContext(opts.runDir);
      const res = await up(ctx, { timeoutMs, insecure: opts.insecure });
      const mode = res.security === 'mtls' ? `mTLS, SVIDs from unix://${ctx.paths.agentSocket}` : 'INSECURE';
      if (res.already) {
        ctx.say(`mesh is already up (supervisor pid ${res.supervisor.pid}, run dir ${ctx.paths.dir}, security: ${mode})`);
        if ((res.security === 'insecure') !== opts.insecure) {
          process.stderr.write(`nsm up: the running mesh is ${res.security === 'insecure' ? 'insecure' : 'secure'}; to change that: nsm down, then nsm up${opts.insecure ? ' --insecure' : ''}\n`);
          process.exitCode = 1;
        }
      } else {
        ctx.say(`mesh is up (supervisor pid ${res.supervisor.pid}, run dir ${ctx.paths.dir})`);
        ctx.say(`  nsmgr: unix://${ctx.paths.sockets.nsmgr}   registry: unix://${ctx.paths.sockets.registry}   logs: ${ctx.paths.logs}`);
        if (res.security === 'mtls') {
          ctx.say(`  security: mTLS; SPIFFE Workload API unix://${ctx.paths.agentSocket}; CA ${ctx.paths.ca.dir} (${res.caCreated ? 'new' : 'kept from the last start'}), trust domain nsm.local`);
        }
      }
      if (res.security === 'insecure') process.stderr.write(`${INSECURE_WARNING}\n`);
    }),
  );
}
