/**
 * `nsm registry-k8s`: the registry (same chains and gRPC server as `nsm registry`, via `startRegistry`)
 * backed by the Kubernetes API: NetworkService and NetworkServiceEndpoint custom resources created in
 * `NSM_NAMESPACE` and found in all namespaces (upstream cmd-registry-k8s). `stop()` stops the server,
 * then ends the store's watches.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Clock } from '../../core/clock.js';
import { k8sRegistryStore, loadKubeConfig } from '../../registry/k8s/index.js';
import { startRegistry, type RegistryStartConfig, type RunningRegistry } from '../registry/index.js';
import type { IdentityDeps } from '../identity.js';
import type { RegistryK8sConfig } from './config.js';

export { registryK8sConfig, type RegistryK8sConfig } from './config.js';

export async function startRegistryK8s(
  config: RegistryStartConfig & Pick<RegistryK8sConfig, 'namespace' | 'kubeconfig'>,
  deps: IdentityDeps & { clock?: Clock; kubeConfig?: KubeConfig; env?: Readonly<Record<string, string | undefined>> },
): Promise<RunningRegistry> {
  const kc = deps.kubeConfig ?? loadKubeConfig(config.kubeconfig || deps.env?.KUBECONFIG || undefined);
  deps.log.info({ server: kc.getCurrentCluster()?.server, namespace: config.namespace }, 'registry-k8s: using the Kubernetes API');
  const store = k8sRegistryStore(kc, { namespace: config.namespace, log: deps.log });
  let registry: RunningRegistry;
  try {
    registry = await startRegistry(config, { log: deps.log, store, clock: deps.clock, identity: deps.identity, signal: deps.signal });
  } catch (err) {
    await store.close();
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    addresses: registry.addresses,
    stop() {
      stopped ??= (async () => {
        await registry.stop();
        await store.close();
      })();
      return stopped;
    },
  };
}
