/** `nsm forwarder` configuration: the env vars of upstream forwarders (cmd-forwarder-vpp) that apply to a kernel forwarder. */
import { isIP } from 'node:net';
import { WIREGUARD_DEFAULT_PORT } from '../../api/constants.js';
import { DEFAULT_WIREGUARD_PORTS } from '../../networkservice/mechanisms/wireguard/ports.js';
import { admissionVars, defineConfig, env, identityVars, DEFAULT_NSM_SOCKET, MIN_TOKEN_LIFETIME_MS } from '../config.js';

/** Bounds of NSM_ORPHAN_GC_INTERVAL (ms). */
export const ORPHAN_GC_INTERVAL_MIN = 1_000;
export const ORPHAN_GC_INTERVAL_MAX = 3_600_000;

/** Most WireGuard listen ports (from WIREGUARD_DEFAULT_PORT up to 65535). */
export const WIREGUARD_PORTS_MAX = 65536 - WIREGUARD_DEFAULT_PORT;

export const forwarderConfig = defineConfig('forwarder', {
  name: env.string('NSM_NAME', 'forwarder name (registered; path segment name)', { default: 'forwarder' }),
  connectTo: env.url('NSM_CONNECT_TO', 'nsmgr URL', { default: DEFAULT_NSM_SOCKET }),
  listenOn: env.url('NSM_LISTEN_ON', 'where the forwarder serves', { default: 'unix:///var/lib/networkservicemesh/forwarder.sock', listen: true }),
  labels: env.labels('NSM_LABELS', 'labels of the forwarder registration', { default: 'p2p:true' }),
  nsName: env.string('NSM_NSNAME', 'service name the forwarder registers under', { default: 'forwarder' }),
  maxTokenLifetime: env.duration('NSM_MAX_TOKEN_LIFETIME', 'lifetime of the path tokens', { default: '10m', min: MIN_TOKEN_LIFETIME_MS }),
  dialTimeout: env.duration('NSM_DIAL_TIMEOUT', 'timeout to dial endpoints and nsmgr', { default: '750ms', min: 1 }),
  orphanGrace: env.duration('NSM_ORPHAN_GRACE', 'nsm-ts: links owned by nsm-ts that no connection re-requests within this time after start are removed', {
    default: '60s',
  }),
  ...admissionVars('nsm-ts: Requests from nsmgr the forwarder works on at once (each programs the kernel)'),
  orphanGcInterval: env.duration('NSM_ORPHAN_GC_INTERVAL', 'nsm-ts: period of the orphan GC after NSM_ORPHAN_GRACE: a link of a connection no longer held, seen by two rounds in a row, is removed', {
    default: '15s',
    min: ORPHAN_GC_INTERVAL_MIN,
    max: ORPHAN_GC_INTERVAL_MAX,
  }),
  tunnelIp: {
    ...env.string('NSM_TUNNEL_IP', "this node's tunnel address (an address of the forwarder's netns); remote mechanisms (VXLAN, WIREGUARD) are offered only when set", { default: '' }),
    parse: (r: string) => {
      const v = r.trim();
      if (v !== '' && isIP(v) === 0) throw new Error('not an IP address');
      return v;
    },
  },
  wireguardPorts: env.int('NSM_WIREGUARD_PORTS', `nsm-ts: UDP ports from ${WIREGUARD_DEFAULT_PORT} this forwarder gives its WireGuard ends (one per remote connection)`, {
    default: String(DEFAULT_WIREGUARD_PORTS),
    min: 1,
    max: WIREGUARD_PORTS_MAX,
  }),
  ...identityVars(),
  logLevel: env.logLevel(),
  nodeName: env.string('NODE_NAME', 'nodeName label of the registration', { default: '' }),
});
