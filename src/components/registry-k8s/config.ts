/**
 * `nsm registry-k8s` configuration: the env vars of upstream cmd-registry-k8s (same names and defaults),
 * plus where the Kubernetes API is: `NSM_KUBECONFIG`, else `KUBECONFIG`, else the pod's service account
 * (in-cluster), else ~/.kube/config.
 */
import { defineConfig, env, identityVars } from '../config.js';
import { REGISTRY_COMMON_VARS } from '../registry/config.js';

export const registryK8sConfig = defineConfig('registry-k8s', {
  namespace: {
    ...env.string('NSM_NAMESPACE', 'namespace where NetworkService / NetworkServiceEndpoint custom resources are created (Find lists all namespaces)', {
      default: 'default',
    }),
    parse(raw: string): string {
      const v = raw.trim();
      if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(v) || v.length > 63) throw new Error('must be a Kubernetes namespace name (DNS-1123 label)');
      return v;
    },
  },
  listenOn: REGISTRY_COMMON_VARS.listenOn,
  expirePeriod: env.duration('NSM_EXPIRE_PERIOD', 'NSE registration lifetime when the NSE asks for none longer: an NSE not re-registered within it is removed', {
    default: '1m',
    min: 1,
  }),
  logLevel: REGISTRY_COMMON_VARS.logLevel,
  kubeconfig: env.string('NSM_KUBECONFIG', 'kubeconfig file; empty: KUBECONFIG, else in-cluster service account, else ~/.kube/config'),
  maxTokenLifetime: REGISTRY_COMMON_VARS.maxTokenLifetime,
  proxyRegistryUrl: REGISTRY_COMMON_VARS.proxyRegistryUrl,
  ...identityVars(),
  kubeletQps: env.int('NSM_KUBELET_QPS', 'upstream client rate limit; accepted for compatibility, not applied', { default: '205', min: 1 }),
});

export type RegistryK8sConfig = ReturnType<typeof registryK8sConfig.parse>;
