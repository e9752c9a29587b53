/** `nsm nsc`: runs a network service client in the current netns (upstream cmd-nsc). */
import type { Command } from 'commander';
import { nscConfig, startNsc } from '../../components/nsc/index.js';
import { ownNetnsUrl } from '../../dataplane/linux/netns.js';
import { linuxProbe } from '../../dataplane/linux/probe.js';
import { runComponent } from '../component.js';
import { envHelp } from '../env-help.js';

export function register(program: Command): void {
  program
    .command('nsc')
    .description('run a network service client in this network namespace, e.g. ip netns exec POD nsm nsc')
    .addHelpText('after', envHelp(nscConfig))
    .action(() =>
      runComponent({
        schema: nscConfig,
        start: async (config, log, signal) =>
          startNsc(config, {
            log,
            signal,
            netnsUrl: await ownNetnsUrl(),
            // One probe for every connection of this process: one kernel watch and one fping for its netns.
            probe: linuxProbe(
              { log },
              { interval: config.livenessCheckInterval, timeout: config.livenessCheckTimeout, icmp: config.livenessCheckEnabled, confirmations: config.healConfirmations },
            ),
          }),
      }),
    );
}
