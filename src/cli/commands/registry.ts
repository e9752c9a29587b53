/** `nsm registry`: runs the registry component (upstream cmd-registry-memory) from `NSM_*` env vars. */
import type { Command } from 'commander';
import { registryConfig } from '../../components/registry/config.js';
import { runComponent } from '../component.js';
import { envHelp } from '../env-help.js';

export function register(program: Command): void {
  program
    .command('registry')
    .description('run the NSM registry (NetworkService and NetworkServiceEndpoint registries, in memory)')
    .addHelpText('after', envHelp(registryConfig))
    .action(async () => {
      const { startRegistry } = await import('../../components/registry/index.js');
      await runComponent({ schema: registryConfig, start: (config, log, signal) => startRegistry(config, { log, signal }) });
    });
}
