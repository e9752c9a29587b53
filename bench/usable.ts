/**
 * The Request-latency method, shared by request-latency.ts and scale.ts: a Request from the project's own
 * NSC chain (`startNsc`, what `nsm nsc` runs) in the bench process, timed until the interface is *usable*
 * (nsmgr serves a kernel interface only to a caller in that netns, so the in-process NSC reaches nsmgr
 * through a byte relay started inside the client netns before the clock starts:
 * `dist/test/fixtures/pod-proxy.js`; it adds a copy per message, well under a millisecond)
 * (in the client netns the link has UP+LOWER_UP and the connection's src address, and a ping to the
 * NSE's address is answered), and its baseline: the same kernel end state made by hand with two
 * `ip -batch` execs, followed by the same usable check.
 */
import { nscConfig, startNsc } from '../src/components/nsc/index.js';
import { createLogger } from '../src/core/log.js';
import type { Connection } from '../src/api/gen/connection.js';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { addNs, delNs, execIn, linkView, ROOT, sleep, wallNow, type Mesh, type Ns } from './lib.js';

const POD_RELAY = join(ROOT, 'dist/test/fixtures/pod-proxy.js');

/** A relay to nsmgr's socket from inside `ns` (see the header); resolves with its socket URL and a stop. */
async function podRelay(mesh: Mesh, ns: Ns): Promise<{ url: string; stop: () => Promise<void> }> {
  const listen = join(mesh.dir, `${ns.name}.sock`);
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, POD_RELAY, listen, mesh.sock.nsmgr.replace(/^unix:\/\//, '')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`pod relay in ${ns.name} exited (${code})`)));
  });
  return { url: `unix://${listen}`, stop: async () => (child.kill('SIGTERM'), await exited) };
}

const bare = (cidr: string) => cidr.split('/')[0]!;

/** One usable check: link UP+LOWER_UP with `addr`, then a ping to `dst` answered. */
export async function usableOnce(ns: Ns, dev: string, addr: string, dst: string): Promise<boolean> {
  const v = await linkView(ns, dev);
  if (!v || !v.flags.includes('UP') || !v.flags.includes('LOWER_UP')) return false;
  if (!v.addr_info.some((a) => `${a.local}/${a.prefixlen}` === addr)) return false;
  try {
    await execIn(ns.path, ['ping', '-n', '-q', '-c', '1', '-i', '0.01', '-w', '2', dst]);
    return true;
  } catch {
    return false;
  }
}

/** Polls until usable; returns the number of failed checks before success. */
export async function waitUsable(ns: Ns, dev: string, addr: string, dst: string, timeoutMs = 10_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  for (let failed = 0; ; failed++) {
    if (await usableOnce(ns, dev, addr, dst)) return failed;
    if (Date.now() > until) throw new Error(`${ns.name}: ${dev} not usable after ${timeoutMs} ms (addr ${addr}, ping ${dst})`);
    await sleep(2);
  }
}

export interface Sample {
  connected: number;
  usable: number;
  verify: number;
  notReadyAtReturn: boolean;
}

/**
 * One Request of `service` (an NSURL) from a fresh client netns, timed to usable; then Close and netns
 * deletion (not timed). Rejects when not connected within `timeoutMs`.
 */
export async function nscSample(mesh: Mesh, i: number, logStream: NodeJS.WritableStream, service: string, timeoutMs = 30_000): Promise<Sample> {
  const ns = await addNs('c');
  const relay = await podRelay(mesh, ns);
  const config = nscConfig.parse({
    NSM_INSECURE: 'true',
    NSM_NAME: `nscb-${i}`,
    NSM_CONNECT_TO: relay.url,
    NSM_NETWORK_SERVICES: service,
    NSM_LIVENESS_CHECK_ENABLED: 'false',
  });
  const log = createLogger(`nscb-${i}`, 'warn', logStream);
  let nsc: Awaited<ReturnType<typeof startNsc>> | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    const t0 = wallNow();
    nsc = await startNsc(config, { log, netnsUrl: ns.inodeUrl });
    const timeout = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`not connected in ${Math.round(timeoutMs)} ms`)), timeoutMs)));
    const [conn] = (await Promise.race([nsc.connected, timeout])) as [Connection];
    const t1 = wallNow();
    const src = conn.context?.ipContext?.srcIpAddrs[0];
    const dst = conn.context?.ipContext?.dstIpAddrs[0];
    if (!src || !dst) throw new Error(`connection without addresses: ${JSON.stringify(conn.context?.ipContext)}`);
    const dev = /\/([^/?]+)(\?|$)/.exec(service.replace(/^kernel:\/\//, ''))?.[1] ?? 'nsm-1';
    const failed = await waitUsable(ns, dev, src, bare(dst));
    const t2 = wallNow();
    await waitUsable(ns, dev, src, bare(dst));
    const verify = wallNow() - t2;
    return { connected: t1 - t0, usable: t2 - t0, verify, notReadyAtReturn: failed > 0 };
  } finally {
    clearTimeout(timer);
    await nsc?.stop();
    await relay.stop();
    await delNs(ns);
  }
}

/** Two `ip -batch` execs: veth `dev` in `a` with its peer `peer` in `b`, one address and one link route per end. */
export async function rawPair(a: Ns, b: Ns, dev: string, peer: string, aAddr: string, bAddr: string): Promise<void> {
  await execIn(a.path, ['ip', '-batch', '-'], `link add ${dev} type veth peer name ${peer} netns ${b.path}\naddr add ${aAddr}/32 dev ${dev}\nlink set dev ${dev} up\nroute replace ${bAddr}/32 dev ${dev} scope link\n`);
  await execIn(b.path, ['ip', '-batch', '-'], `addr add ${bAddr}/32 dev ${peer}\nlink set dev ${peer} up\nroute replace ${aAddr}/32 dev ${peer} scope link\n`);
}

/**
 * Baseline of one Request: the raw pair from a fresh netns into `b` (default: a fresh one too; pass the
 * NSE's netns to measure it next to the interfaces that exist there) + the usable check. `k` makes the
 * names and addresses unique (10.81.0.0/16).
 */
export async function rawSample(k: number, b?: Ns): Promise<{ create: number; usable: number }> {
  const a = await addNs('ra');
  const bb = b ?? (await addNs('rb'));
  const aAddr = `10.81.${Math.floor(k / 128) % 256}.${(k % 128) * 2 + 1}`;
  const bAddr = `10.81.${Math.floor(k / 128) % 256}.${(k % 128) * 2}`;
  try {
    const t0 = wallNow();
    await rawPair(a, bb, 'nsm-1', `raw-${k}`, aAddr, bAddr);
    const t1 = wallNow();
    await waitUsable(a, 'nsm-1', `${aAddr}/32`, bAddr);
    return { create: t1 - t0, usable: wallNow() - t0 };
  } finally {
    await delNs(a);
    if (!b) await delNs(bb);
  }
}
