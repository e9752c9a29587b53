/**
 * `nsm registry` configuration: the env vars of upstream cmd-registry-memory (same names; defaults as
 * upstream except `NSM_EXPIRE_PERIOD`, which nsm-ts honours, see its description).
 */
import { defineConfig, env, identityVars, MIN_TOKEN_LIFETIME_MS } from '../config.js';

/** The variables both registries (memory and Kubernetes) take with the same meaning. */
export const REGISTRY_COMMON_VARS = {
  listenOn: env.urls('NSM_LISTEN_ON', 'comma-separated URLs to serve the registry on: unix:///path or tcp://host:port (k8s: tcp://:5002)', {
    default: 'unix:///listen.on.socket',
    listen: true,
  }),
  logLevel: env.logLevel(),
  maxTokenLifetime: env.duration('NSM_MAX_TOKEN_LIFETIME', 'maximum lifetime of the path tokens this registry signs (its segment of the registry path)', {
    default: '10m',
    min: MIN_TOKEN_LIFETIME_MS,
  }),
  proxyRegistryUrl: env.url(
    'NSM_PROXY_REGISTRY_URL',
    'where upstream forwards interdomain (name@domain) operations; accepted for compatibility but NOT used (nsm-ts has no interdomain)',
  ),
} as const;

export const registryConfig = defineConfig('registry', {
  listenOn: REGISTRY_COMMON_VARS.listenOn,
  expirePeriod: env.duration(
    'NSM_EXPIRE_PERIOD',
    'NSE registration lifetime: an NSE not re-registered within it is removed (watchers get deleted=true). Honoured here; upstream cmd-registry-memory parses it but hard-codes 1m',
    { default: '1m', min: 1 },
  ),
  logLevel: REGISTRY_COMMON_VARS.logLevel,
  maxTokenLifetime: REGISTRY_COMMON_VARS.maxTokenLifetime,
  proxyRegistryUrl: REGISTRY_COMMON_VARS.proxyRegistryUrl,
  ...identityVars(),
});

export type RegistryConfig = ReturnType<typeof registryConfig.parse>;
