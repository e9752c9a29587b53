/** `nsm nsc` configuration: upstream cmd-nsc env vars and defaults, plus the heal knobs of nsm-ts. */
import { defineConfig, env, identityVars, parseList, DEFAULT_NSM_SOCKET, MIN_TOKEN_LIFETIME_MS } from '../config.js';
import { parseNsUrl } from '../../api/nsurl.js';

export const nscConfig = defineConfig('nsc', {
  name: env.string('NSM_NAME', 'client name: path segment 0; connection ids are <NSM_NAME>-<i>', { default: 'nsc' }),
  connectTo: env.url('NSM_CONNECT_TO', 'nsmgr URL', { default: DEFAULT_NSM_SOCKET }),
  dialTimeout: env.duration('NSM_DIAL_TIMEOUT', 'timeout to dial nsmgr', { default: '5s', min: 1 }),
  requestTimeout: env.duration('NSM_REQUEST_TIMEOUT', 'timeout of each Request attempt and of Close; bounds heal and refresh attempts too', {
    default: '15s',
    min: 1,
  }),
  maxConcurrentRequests: env.int(
    'NSM_MAX_CONCURRENT_REQUESTS',
    'nsm-ts: at most this many first Requests of this client in flight at once (upstream cmd-nsc makes them one after another); each attempt\'s NSM_REQUEST_TIMEOUT starts when it is sent',
    { default: '4', min: 1, max: 64 },
  ),
  maxTokenLifetime: env.duration('NSM_MAX_TOKEN_LIFETIME', 'lifetime of the path tokens; refresh runs before they expire', { default: '10m', min: MIN_TOKEN_LIFETIME_MS }),
  networkServices: {
    ...env.list('NSM_NETWORK_SERVICES', 'comma list of NSURLs [kernel://]service[@domain][/ifname][?label=value&…]', { required: true }),
    parse: (raw: string) => {
      const urls = parseList(raw);
      if (urls.length === 0) throw new Error('at least one network service URL is required, e.g. kernel://my-service/nsm-1');
      return urls.map((u) => parseNsUrl(u));
    },
  },
  labels: env.labels('NSM_LABELS', 'accepted for compatibility; as upstream, request labels come from the NSURL query', { default: '' }),
  mechanism: env.string('NSM_MECHANISM', 'accepted for compatibility; as upstream, the mechanism comes from the NSURL scheme', { default: 'kernel' }),
  livenessCheckEnabled: env.bool('NSM_LIVENESS_CHECK_ENABLED', 'probe the data plane through each connection and heal when it fails', { default: 'true' }),
  livenessCheckInterval: env.duration('NSM_LIVENESS_CHECK_INTERVAL', 'interval between probes (and between kernel-state confirmations)', {
    default: '200ms',
    min: 10,
  }),
  livenessCheckTimeout: env.duration('NSM_LIVENESS_CHECK_TIMEOUT', 'a probe pair with no reply for this long means the data plane is down', {
    default: '1s',
    min: 10,
  }),
  healConfirmations: env.int('NSM_HEAL_CONFIRMATIONS', 'nsm-ts: a kernel-state fault must be seen this many times, one interval apart, before healing (1 = heal at once)', {
    default: '3',
    min: 1,
    max: 100,
  }),
  healMaxBackoff: env.duration('NSM_HEAL_MAX_BACKOFF', 'nsm-ts: upper bound of the backoff between failed heal attempts', { default: '5s', min: 10 }),
  localDnsServerEnabled: env.bool('NSM_LOCAL_DNS_SERVER_ENABLED', 'accepted for compatibility; nsm-ts runs no local DNS proxy (see README limits)', {
    default: 'false',
  }),
  statusFile: env.string('NSM_STATUS_FILE', 'nsm-ts: where to write connection and heal status as JSON (read by nsm status); empty = nowhere', { default: '' }),
  ...identityVars(),
  logLevel: env.logLevel(),
  nodeName: env.string('NODE_NAME', 'becomes the nodeName label of the connection', { default: '' }),
  podName: env.string('POD_NAME', 'becomes the podName label of the connection', { default: '' }),
  clusterName: env.string('CLUSTER_NAME', 'becomes the clusterName label of the connection', { default: '' }),
});
