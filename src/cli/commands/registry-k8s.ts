/** `nsm registry-k8s`: the registry backed by Kubernetes custom resources (upstream cmd-registry-k8s). */
import type { Command } from 'commander';
import { registryK8sConfig } from '../../components/registry-k8s/config.js';
import { startRegistryK8s } from '../../components/registry-k8s/index.js';
import { runComponent } from '../component.js';

function envHelp(): string {
  const vars = Object.values(registryK8sConfig.vars);
  const width = Math.max(...vars.map((v) => v.name.length));
  const lines = vars.map((v) => `  ${v.name.padEnd(width)}  ${v.description}${v.default ? ` (default ${v.default})` : ''}`);
  return `\nEnvironment:\n${lines.join('\n')}\n  ${'KUBECONFIG'.padEnd(width)}  kubeconfig file when NSM_KUBECONFIG is empty\n`;
}

export function register(program: Command): void {
  program
    .command('registry-k8s')
    .description('run the NSM registry backed by the Kubernetes API (NetworkService / NetworkServiceEndpoint custom resources)')
    .addHelpText('after', envHelp())
    .action(async () => {
      await runComponent({
        schema: registryK8sConfig,
        start: (config, log) => startRegistryK8s(config, { log, env: process.env }),
      });
    });
}
