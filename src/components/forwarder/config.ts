/** `nsm forwarder` configuration: the env vars of upstream forwarders (cmd-forwarder-vpp) that apply to a kernel forwarder. */
import { defineConfig, env, DEFAULT_NSM_SOCKET } from '../config.js';

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
  logLevel: env.logLevel(),
  nodeName: env.string('NODE_NAME', 'nodeName label of the registration', { default: '' }),
});
