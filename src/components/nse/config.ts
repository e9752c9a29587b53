/** `nsm nse` configuration: upstream cmd-nse-icmp-responder env vars and defaults. */
import { defineConfig, env, identityVars, DEFAULT_NSM_SOCKET, MIN_TOKEN_LIFETIME_MS } from '../config.js';
import { parseCidrGroups } from '../../networkservice/ipam/index.js';

export const nseConfig = defineConfig('nse', {
  name: env.string('NSM_NAME', 'endpoint name (registered; path segment name)', { default: 'icmp-server' }),
  connectTo: env.url('NSM_CONNECT_TO', 'nsmgr URL (registration)', { default: DEFAULT_NSM_SOCKET }),
  listenOn: env.url('NSM_LISTEN_ON', 'nsm-ts: where the endpoint serves; default a fresh unix socket under a temp dir (as upstream)', { default: '', listen: true }),
  maxTokenLifetime: env.duration('NSM_MAX_TOKEN_LIFETIME', 'lifetime of the path tokens', { default: '10m', min: MIN_TOKEN_LIFETIME_MS }),
  serviceNames: {
    ...env.list('NSM_SERVICE_NAMES', 'comma list of the network services this endpoint provides', { default: 'icmp-responder' }),
    parse: (raw: string) => {
      const names = raw.split(',').map((s) => s.trim()).filter(Boolean);
      if (names.length === 0) throw new Error('at least one service name is required');
      for (const n of names) if (!/^[A-Za-z0-9][A-Za-z0-9._@-]*$/.test(n)) throw new Error(`"${n}" is not a valid service name`);
      return names;
    },
  },
  payload: env.oneOf('NSM_PAYLOAD', 'payload of the NetworkService registered with NSM_REGISTER_SERVICE', ['ethernet', 'ip'] as const, {
    default: 'ETHERNET',
  }),
  labels: env.labels('NSM_LABELS', 'endpoint labels k:v,… (under every service in network_service_labels)', { default: '' }),
  cidrPrefix: {
    ...env.string('NSM_CIDR_PREFIX', 'CIDR groups: a,b = separate groups; [a,b],c = a and b in one group (dual stack); one point-to-point IPAM per group', {
      default: '169.254.0.0/16',
    }),
    parse: (raw: string) => parseCidrGroups(raw, 'NSM_CIDR_PREFIX'),
  },
  ipamPolicy: env.oneOf('NSM_IPAM_POLICY', 'polite: keep requested addresses outside the pool; strict: drop them', ['polite', 'strict'] as const, {
    default: 'polite',
  }),
  idleTimeout: env.duration('NSM_IDLE_TIMEOUT', 'exit after no connection for this long (0 = never)', { default: '0' }),
  registerService: env.bool('NSM_REGISTER_SERVICE', 'register each service name as a NetworkService at start', { default: 'true' }),
  unregisterItself: env.bool('NSM_UNREGISTER_ITSELF', 'unregister the endpoint on exit', { default: 'false' }),
  ...identityVars(),
  logLevel: env.logLevel(),
  nodeName: env.string('NODE_NAME', 'nodeName label', { default: '' }),
  podName: env.string('POD_NAME', 'podName label', { default: '' }),
  clusterName: env.string('CLUSTER_NAME', 'clusterName label', { default: '' }),
});
