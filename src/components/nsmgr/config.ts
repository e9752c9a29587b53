/** `nsm nsmgr` configuration: upstream cmd-nsmgr env vars and defaults. */
import { MAX_CONCURRENCY, MAX_QUEUE } from '../../core/admission.js';
import { defineConfig, env, DEFAULT_NSM_SOCKET } from '../config.js';

/**
 * Measured on the 2-core dev machine (200 first Requests at once, test/scale-overload.test.ts with no
 * stall, machine shared, load average ~30): limit 2 → 60 s, 8 → 24 s, 32 → 26 s. Past a handful the
 * cores are busy and more at once only adds event-loop lag (what broke keepalive and dials before).
 */
export const DEFAULT_MAX_CONCURRENT_REQUESTS = 8;
/** A waiting call costs a few KiB; 4096 of them stay far below the memory target. */
export const DEFAULT_MAX_QUEUED_REQUESTS = 4096;

export const nsmgrConfig = defineConfig('nsmgr', {
  name: env.string('NSM_NAME', 'nsmgr name (path segment name)', { default: 'nmgr' }),
  listenOn: env.urls('NSM_LISTEN_ON', 'comma list of unix:// and tcp:// URLs; the first tcp URL is the public URL given to the registry', {
    default: DEFAULT_NSM_SOCKET,
    listen: true,
  }),
  registryUrl: env.url('NSM_REGISTRY_URL', 'registry URL', { default: 'tcp://localhost:5001' }),
  maxTokenLifetime: env.duration('NSM_MAX_TOKEN_LIFETIME', 'lifetime of the path tokens', { default: '10m' }),
  dialTimeout: env.duration('NSM_DIAL_TIMEOUT', 'timeout to dial forwarders, endpoints and the registry', { default: '750ms', min: 1 }),
  forwarderServiceName: env.string('NSM_FORWARDER_NETWORK_SERVICE_NAME', 'service name forwarders register under', { default: 'forwarder' }),
  maxConcurrentRequests: env.int('NSM_MAX_CONCURRENT_REQUESTS', 'nsm-ts: Requests from clients nsmgr works on at once; the rest wait in arrival order until their turn or until their caller gives up. Closes have a separate bound of the same size', {
    default: String(DEFAULT_MAX_CONCURRENT_REQUESTS),
    min: 1,
    max: MAX_CONCURRENCY,
  }),
  maxQueuedRequests: env.int('NSM_MAX_QUEUED_REQUESTS', 'nsm-ts: Requests (and, separately, Closes) that may wait for their turn; one more is refused with RESOURCE_EXHAUSTED', {
    default: String(DEFAULT_MAX_QUEUED_REQUESTS),
    min: 0,
    max: MAX_QUEUE,
  }),
  logLevel: env.logLevel(),
  nodeName: env.string('NODE_NAME', 'nodeName label added to connections and registrations', { default: '' }),
  podName: env.string('POD_NAME', 'podName label', { default: '' }),
  clusterName: env.string('CLUSTER_NAME', 'clusterName label', { default: '' }),
});
