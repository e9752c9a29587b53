/** `nsm supervise` (started by `nsm up`): run and restart the node components in the foreground. */
import type { Command } from 'commander';
import { createLogger, parseLogLevel } from '../../core/log.js';
import { errorMessage } from '../../core/errors.js';
import { addRunDirOption, meshContext } from '../../local/cli.js';
import { isRunning } from '../../local/proc.js';
import { readState } from '../../local/state.js';
import { Supervisor } from '../../local/supervisor.js';

export function register(program: Command): void {
  addRunDirOption(program.command('supervise', { hidden: true }).description('run registry, nsmgr and forwarder (each node\'s, in its netns, for a mesh of nodes) and restart them when they die (used by nsm up)').option('--insecure', 'no Workload API; components get NSM_INSECURE=true', false)).action(
    async (opts: { runDir?: string; insecure: boolean }) => {
      const ctx = meshContext(opts.runDir);
      const log = createLogger('supervisor', parseLogLevel(process.env.NSM_LOG_LEVEL ?? 'info') ?? 'info', process.stdout);
      const state = readState(ctx.paths);
      const other = state?.supervisor;
      if (other && other.pid !== process.pid && isRunning(other)) {
        process.stderr.write(`nsm supervise: another supervisor runs for ${ctx.paths.dir} (pid ${other.pid})\n`);
        process.exit(1);
      }
      const sup = new Supervisor({ paths: ctx.paths, hostname: ctx.hostname, entry: ctx.entry, log, security: opts.insecure ? 'insecure' : 'mtls', topology: state?.topology });
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, 'supervisor stopping');
        sup.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            log.error({ err: errorMessage(err) }, 'stop failed');
            process.exit(1);
          },
        );
      };
      for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, () => stop(s));
      log.info({ runDir: ctx.paths.dir, entry: ctx.entry }, 'supervisor starting');
      try {
        await sup.start();
      } catch (err) {
        log.error({ err: errorMessage(err) }, 'supervisor cannot start');
        await sup.stop();
        process.exit(1);
      }
      log.info('supervisor started all components');
      // Keeps running: child processes and timers hold the event loop.
    },
  );
}
