/** `nsm forwarder`: runs the kernel forwarder (veth pairs between pod network namespaces). */
import type { Command } from 'commander';
import { forwarderConfig } from '../../components/forwarder/config.js';
import { runComponent } from '../component.js';
import { envHelp } from '../env-help.js';
import { requireRoot } from '../root.js';

export function register(program: Command): void {
  program
    .command('forwarder')
    .description('run the kernel forwarder of this node (needs root: it creates interfaces in pod network namespaces)')
    .addHelpText('after', envHelp(forwarderConfig))
    .action(async () => {
      const [{ startForwarder }, { linuxDataPlane }] = await Promise.all([import('../../components/forwarder/index.js'), import('../../dataplane/linux/index.js')]);
      await runComponent({
        schema: forwarderConfig,
        start: async (config, log, signal) => {
          requireRoot('forwarder');
          // the forwarder's links carry its name: another forwarder on this machine never collects them
          return startForwarder(config, { log, signal, dataplane: linuxDataPlane({ log }, { scope: config.name }) });
        },
      });
    });
}
