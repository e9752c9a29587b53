/** `nsm forwarder` configuration: the env vars of upstream forwarders (cmd-forwarder-vpp) that apply to a kernel forwarder. */
import { MAX_CONCURRENCY, MAX_QUEUE } from '../../core/admission.js';
import { defineConfig, env, DEFAULT_NSM_SOCKET } from '../config.js';

/** Bounds of NSM_ORPHAN_GC_INTERVAL (ms). */
export const ORPHAN_GC_INTERVAL_MIN = 1_000;
export const ORPHAN_GC_INTERVAL_MAX = 3_600_000;

/**
 * Measured on the 2-core dev machine (200 first Requests at once, test/scale-overload.test.ts with no
 * stall, machine shared, load average ~30): limit 2 → 60 s, 8 → 24 s, 32 → 26 s. Past a handful the
 * cores are busy and more at once only adds event-loop lag (what broke keepalive and dials before).
 */
export const DEFAULT_MAX_CONCURRENT_REQUESTS = 8;
/** A waiting call costs a few KiB; 4096 of them stay far below the memory target. */
export const DEFAULT_MAX_QUEUED_REQUESTS = 4096;

export const forwarderConfig = defineConfig('forwarder', {
  name: env.string('NSM_NAME', 'forwarder name (registered; path segment name)', { default: 'forwarder' }),
  connectTo: env.url('NSM_CONNECT_TO', 'nsmgr URL', { default: DEFAULT_NSM_SOCKET }),
  listenOn: env.url('NSM_LISTEN_ON', 'where the forwarder serves', { default: 'unix:///var/lib/networkservicemesh/forwarder.sock', listen: true }),
  labels: env.labels('NSM_LABELS', 'labels of the forwarder registration', { default: 'p2p:true' }),
  nsName: env.string('NSM_NSNAME', 'service name the forwarder registers under', { default: 'forwarder' }),
  maxTokenLifetime: env.duration('NSM_MAX_TOKEN_LIFETIME', 'lifetime of the path tokens', { default: '10m' }),
  dialTimeout: env.duration('NSM_DIAL_TIMEOUT', 'timeout to dial endpoints and nsmgr', { default: '750ms', min: 1 }),
  orphanGrace: env.duration('NSM_ORPHAN_GRACE', 'nsm-ts: links owned by nsm-ts that no connection re-requests within this time after start are removed', {
    default: '60s',
  }),
  maxConcurrentRequests: env.int('NSM_MAX_CONCURRENT_REQUESTS', 'nsm-ts: Requests from nsmgr the forwarder works on at once (each programs the kernel); the rest wait in arrival order until their turn or until their caller gives up. Closes have a separate bound of the same size', {
    default: String(DEFAULT_MAX_CONCURRENT_REQUESTS),
    min: 1,
    max: MAX_CONCURRENCY,
  }),
  maxQueuedRequests: env.int('NSM_MAX_QUEUED_REQUESTS', 'nsm-ts: Requests (and, separately, Closes) that may wait for their turn; one more is refused with RESOURCE_EXHAUSTED', {
    default: String(DEFAULT_MAX_QUEUED_REQUESTS),
    min: 0,
    max: MAX_QUEUE,
  }),
  orphanGcInterval: env.duration('NSM_ORPHAN_GC_INTERVAL', 'nsm-ts: period of the orphan GC after NSM_ORPHAN_GRACE: a link of a connection no longer held, seen by two rounds in a row, is removed', {
    default: '15s',
    min: ORPHAN_GC_INTERVAL_MIN,
    max: ORPHAN_GC_INTERVAL_MAX,
  }),
  logLevel: env.logLevel(),
  nodeName: env.string('NODE_NAME', 'nodeName label of the registration', { default: '' }),
});
