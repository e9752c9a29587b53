/** `nsm nsmgr`: runs the per-node manager (upstream cmd-nsmgr) from `NSM_*` env vars. */
import type { Command } from 'commander';
import { nsmgrConfig } from '../../components/nsmgr/config.js';
import { runComponent } from '../component.js';
import { envHelp } from '../env-help.js';

export function register(program: Command): void {
  program
    .command('nsmgr')
    .description('run the network service manager of this node')
    .addHelpText('after', envHelp(nsmgrConfig))
    .action(async () => {
      const { startNsmgr } = await import('../../components/nsmgr/index.js');
      await runComponent({ schema: nsmgrConfig, start: (config, log, signal) => startNsmgr(config, { log, signal }) });
    });
}
