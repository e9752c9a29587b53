/** `nsm nsmgr` configuration: upstream cmd-nsmgr env vars and defaults. */
import { admissionVars, defineConfig, env, identityVars, DEFAULT_NSM_SOCKET, MIN_TOKEN_LIFETIME_MS } from '../config.js';

export const nsmgrConfig = defineConfig('nsmgr', {
  name: env.string('NSM_NAME', 'nsmgr name (path segment name)', { default: 'nmgr' }),
  listenOn: env.urls('NSM_LISTEN_ON', 'comma list of unix:// and tcp:// URLs; the first tcp URL is the public URL given to the registry', {
    default: DEFAULT_NSM_SOCKET,
    listen: true,
  }),
  registryUrl: env.url('NSM_REGISTRY_URL', 'registry URL', { default: 'tcp://localhost:5001' }),
  maxTokenLifetime: env.duration('NSM_MAX_TOKEN_LIFETIME', 'lifetime of the path tokens', { default: '10m', min: MIN_TOKEN_LIFETIME_MS }),
  dialTimeout: env.duration('NSM_DIAL_TIMEOUT', 'timeout to dial forwarders, endpoints and the registry', { default: '750ms', min: 1 }),
  forwarderServiceName: env.string('NSM_FORWARDER_NETWORK_SERVICE_NAME', 'service name forwarders register under', { default: 'forwarder' }),
  ...admissionVars('nsm-ts: Requests from clients nsmgr works on at once'),
  ...identityVars(),
  logLevel: env.logLevel(),
  nodeName: env.string('NODE_NAME', 'nodeName label added to connections and registrations', { default: '' }),
  podName: env.string('POD_NAME', 'podName label', { default: '' }),
  clusterName: env.string('CLUSTER_NAME', 'clusterName label', { default: '' }),
});
