/**
 * Linux data-plane probe for a client connection, run by the NSC inside its own netns.
 *
 * Two signals:
 * - kernel state of the client interface (exists, admin up, carrier, every `src_ip_addrs` present, a
 *   route to every `dst_ip_addrs`), read at once on every kernel link/address/route event (a long-lived
 *   `ip monitor`) and on `check()`. Fast: an `ip link set nsm-1 down` is seen within milliseconds.
 * - ICMP through the connection: one long-lived `ping -i <interval> -I <src> <dst>` per same-family
 *   (src, dst) pair (upstream's pair rule). A pair with no reply for `timeout` — counted from the later
 *   of its last reply and the last successful Request (grace) — is a fault.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Connection } from '../../api/gen/connection.js';
import { contains } from '../../api/cidr.js';
import { MECH_KERNEL, PARAM_NAME } from '../../api/constants.js';
import { realClock, type Clock } from '../../core/clock.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { DataPlaneProbe, Observation } from '../probe.js';
import { readInterface, watchLinks } from './inspect.js';

export interface LinuxProbeOptions {
  readonly interval: number;
  readonly timeout: number;
  /** Send ICMP probes (NSM_LIVENESS_CHECK_ENABLED); kernel-state checks always run. */
  readonly icmp: boolean;
}

interface Expect {
  ifname: string;
  src: string[];
  dst: string[];
  pairs: Array<[string, string]>;
}

const bare = (cidr: string) => cidr.split('/')[0];
const family = (ip: string) => (ip.includes(':') ? 6 : 4);

function expectOf(conn: Connection): Expect | undefined {
  if (conn.mechanism?.type !== MECH_KERNEL) return undefined;
  const ifname = conn.mechanism.parameters[PARAM_NAME];
  if (!ifname) return undefined;
  const ipc = conn.context?.ipContext;
  const src = ipc?.srcIpAddrs ?? [];
  const dst = ipc?.dstIpAddrs ?? [];
  const pairs: Array<[string, string]> = [];
  for (const s of src) for (const d of dst) if (family(bare(s)) === family(bare(d))) pairs.push([bare(s), bare(d)]);
  return { ifname, src, dst, pairs };
}

export function linuxProbe(deps: { log: Logger; clock?: Clock }, options: LinuxProbeOptions): DataPlaneProbe {
  const clock = deps.clock ?? realClock;
  const log = deps.log.child({ element: 'probe' });
  /** Per pair key `src>dst`: time of last reply. */
  const lastReply = new Map<string, number>();
  let graceFrom = clock.now();
  /** Extra grace beyond one timeout (after a reselect: a new interface takes a moment to pass traffic). */
  let extraGrace = 0;

  async function kernelCheck(conn: Connection, signal?: AbortSignal): Promise<Observation> {
    const want = expectOf(conn);
    if (!want) return { ok: true };
    let s;
    try {
      s = await readInterface('self', want.ifname, signal ? { signal } : {});
    } catch (err) {
      return { ok: false, source: 'kernel', detail: `cannot read ${want.ifname}: ${errorMessage(err)}` };
    }
    if (!s.exists) return { ok: false, source: 'kernel', detail: `interface ${want.ifname} is missing` };
    if (!s.up) return { ok: false, source: 'kernel', detail: `interface ${want.ifname} is down` };
    if (!s.carrier) return { ok: false, source: 'kernel', detail: `interface ${want.ifname} has no carrier (peer down)` };
    const have = new Set(s.addrs.map(bare));
    for (const a of want.src) if (!have.has(bare(a))) return { ok: false, source: 'kernel', detail: `address ${a} missing on ${want.ifname}` };
    const routed = new Set(s.routes.map((r) => bare(r.prefix)));
    for (const d of want.dst) {
      const ip = bare(d);
      const onLink = s.addrs.some((a) => a.split('/')[0] !== ip && sameNet(a, ip));
      if (!routed.has(ip) && !onLink) return { ok: false, source: 'kernel', detail: `route to ${ip} missing on ${want.ifname}` };
    }
    return { ok: true };
  }

  function probeCheck(conn: Connection): Observation {
    if (!options.icmp) return { ok: true };
    const want = expectOf(conn);
    if (!want) return { ok: true };
    const now = clock.now();
    for (const [s, d] of want.pairs) {
      const since = Math.max(lastReply.get(`${s}>${d}`) ?? 0, graceFrom + extraGrace);
      if (now - since > options.timeout) return { ok: false, source: 'probe', detail: `no ICMP reply from ${d} (source ${s}) for ${now - since} ms` };
    }
    return { ok: true };
  }

  return {
    reset(_conn, graceMs) {
      graceFrom = clock.now();
      extraGrace = graceMs === undefined ? 0 : Math.max(0, graceMs - options.timeout);
    },
    async check(conn, signal) {
      const k = await kernelCheck(conn, signal);
      return k.ok ? probeCheck(conn) : k;
    },
    async *watch(conn, signal) {
      const want = expectOf(conn);
      if (!want) return;
      const queue: Observation[] = [];
      let wake: (() => void) | undefined;
      const push = (o: Observation) => {
        queue.push(o);
        wake?.();
      };
      const children: ChildProcess[] = [];
      let checking = false;
      let again = false;
      const onKernelEvent = async () => {
        if (checking) {
          again = true;
          return;
        }
        checking = true;
        try {
          do {
            again = false;
            const o = await kernelCheck(conn, signal);
            if (!o.ok && !signal.aborted) push(o);
          } while (again && !signal.aborted);
        } finally {
          checking = false;
        }
      };
      void (async () => {
        try {
          for await (const _ of watchLinks('self', signal)) void onKernelEvent();
        } catch (err) {
          if (!signal.aborted) log.warn({ err: errorMessage(err) }, 'kernel event watch ended');
        }
      })();
      if (options.icmp) {
        for (const [s, d] of want.pairs) {
          const key = `${s}>${d}`;
          const start = () => {
            if (signal.aborted) return;
            const args = ['-n', '-i', String(options.interval / 1000), '-W', String(Math.max(1, Math.ceil(options.timeout / 1000))), '-I', s, d];
            const child = spawn('ping', d.includes(':') ? ['-6', ...args] : args, { stdio: ['ignore', 'pipe', 'ignore'] });
            children.push(child);
            createInterface({ input: child.stdout! }).on('line', (line) => {
              if (line.includes('bytes from')) lastReply.set(key, clock.now());
            });
            child.once('error', () => undefined);
            child.once('exit', () => {
              if (!signal.aborted) clock.setTimeout(start, options.interval);
            });
          };
          start();
        }
      }
      let silent = false;
      const tick = () => {
        if (signal.aborted) return;
        const o = probeCheck(conn);
        if (!o.ok && !silent) push(o);
        silent = !o.ok;
        timer = clock.setTimeout(tick, options.interval);
      };
      let timer = clock.setTimeout(tick, options.interval);
      try {
        while (!signal.aborted) {
          if (queue.length === 0) {
            await new Promise<void>((r) => {
              wake = r;
              signal.addEventListener('abort', () => r(), { once: true });
            });
            wake = undefined;
          }
          while (queue.length > 0 && !signal.aborted) yield queue.shift()!;
        }
      } finally {
        timer.cancel();
        for (const c of children) c.kill('SIGKILL');
      }
    },
  };
}

function sameNet(cidr: string, ip: string): boolean {
  const bits = Number(cidr.split('/')[1]);
  return family(bare(cidr)) === family(ip) && bits < (family(ip) === 4 ? 32 : 128) && contains(cidr, ip);
}
