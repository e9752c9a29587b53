/** `nsm registry-k8s`: the registry backed by Kubernetes custom resources (upstream cmd-registry-k8s). */
import type { Command } from 'commander';
import { registryK8sConfig } from '../../components/registry-k8s/config.js';
import { runComponent } from '../component.js';
import { envHelp } from '../env-help.js';

export function register(program: Command): void {
  program
    .command('registry-k8s')
    .description('run the NSM registry backed by the Kubernetes API (NetworkService / NetworkServiceEndpoint custom resources)')
    .addHelpText('after', envHelp(registryK8sConfig, { KUBECONFIG: 'kubeconfig file when NSM_KUBECONFIG is empty' }))
    .action(async () => {
      // Loaded on use: the Kubernetes client alone costs ~70 MiB of RSS in every other command.
      const { startRegistryK8s } = await import('../../components/registry-k8s/index.js');
      await runComponent({ schema: registryK8sConfig, start: (config, log, signal) => startRegistryK8s(config, { log, signal, env: process.env }) });
    });
}
