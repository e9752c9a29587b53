/**
 * Real network namespaces for tests and benchmarks: `nsmt-<random>` netns pairs, helpers to break them
 * with plain `ip`, and a cleanup that deletes links first (synchronous in the kernel), then the netns,
 * and polls until no process or mount still references them (netns deletion is asynchronous).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, readdir, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { sleep } from '../../core/signals.js';

const run = promisify(execFile);

export async function sh(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(cmd, args, { encoding: 'utf8' });
}

/** Why real-netns tests cannot run here, or undefined when they can. */
export async function linuxSkipReason(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (creates network namespaces)';
  for (const bin of ['ip', 'nsenter', 'ping']) {
    try {
      await run(bin, bin === 'ip' ? ['-V'] : ['-V']);
    } catch {
      return `needs \`${bin}\` (apt-get install -y iproute2 util-linux iputils-ping)`;
    }
  }
  return undefined;
}

export interface TestNetns {
  name: string;
  path: string;
  /** `inode://<dev>/<ino>` */
  inodeUrl: string;
  fileUrl: string;
  ino: bigint;
}

export async function addNetns(tag = ''): Promise<TestNetns> {
  const name = `nsmt-${randomBytes(4).toString('hex')}${tag}`;
  await run('ip', ['netns', 'add', name]);
  const path = `/run/netns/${name}`;
  const s = await stat(path, { bigint: true });
  return { name, path, inodeUrl: `inode://${s.dev}/${s.ino}`, fileUrl: `file://${path}`, ino: s.ino };
}

export async function linkNames(ns: TestNetns): Promise<string[]> {
  const { stdout } = await run('ip', ['-n', ns.name, '-j', 'link', 'show']);
  return (JSON.parse(stdout) as Array<{ ifname: string }>).map((l) => l.ifname).filter((n) => n !== 'lo').sort();
}

/** Deletes every link, then the netns, then waits until nothing references it any more. */
export async function delNetns(...all: TestNetns[]): Promise<void> {
  for (const ns of all) {
    try {
      for (const l of await linkNames(ns)) await run('ip', ['-n', ns.name, 'link', 'del', 'dev', l]).catch(() => undefined);
    } catch {
      /* already gone */
    }
    await run('ip', ['netns', 'del', ns.name]).catch(() => undefined);
  }
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = [];
    for (const ns of all) if (await referenced(ns)) left.push(ns.name);
    if (left.length === 0) return;
    if (Date.now() > deadline) throw new Error(`netns still referenced after 10 s: ${left.join(', ')}`);
    await sleep(50);
  }
}

async function referenced(ns: TestNetns): Promise<boolean> {
  if (await access(ns.path).then(() => true, () => false)) return true;
  for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
    const s = await stat(`/proc/${pid}/ns/net`, { bigint: true }).catch(() => undefined);
    if (s && s.ino === ns.ino) return true;
  }
  return false;
}

/** Two "nodes" for tunnel tests: two netns joined by a veth underlay (`u0` 10.231.0.1/24 fd31::1/64, `u1` 10.231.0.2/24 fd31::2/64). */
export interface TestNodes {
  a: TestNetns;
  b: TestNetns;
  ipA: string;
  ipB: string;
  ip6A: string;
  ip6B: string;
}

export const UNDERLAY_DEVS = ['u0', 'u1'];

/**
 * Makes two node netns joined by a veth underlay, loopback up, tx checksum offload off on the underlay
 * (kernel VXLAN between veths drops packets with it on: networkservicemesh#2257).
 */
export async function addNodes(): Promise<TestNodes> {
  const a = await addNetns('na');
  const b = await addNetns('nb');
  const ipn = (ns: TestNetns, ...args: string[]) => run('ip', ['-n', ns.name, ...args]);
  await ipn(a, 'link', 'add', 'u0', 'type', 'veth', 'peer', 'name', 'u1', 'netns', b.path);
  for (const [ns, dev, ip, ip6] of [[a, 'u0', '10.231.0.1/24', 'fd31::1/64'], [b, 'u1', '10.231.0.2/24', 'fd31::2/64']] as const) {
    await ipn(ns, 'addr', 'add', ip, 'dev', dev);
    await ipn(ns, 'addr', 'add', ip6, 'dev', dev, 'nodad');
    await ipn(ns, 'link', 'set', 'lo', 'up');
    await ipn(ns, 'link', 'set', dev, 'up');
    await run('ip', ['netns', 'exec', ns.name, 'ethtool', '-K', dev, 'tx', 'off']).catch(() => undefined);
  }
  return { a, b, ipA: '10.231.0.1', ipB: '10.231.0.2', ip6A: 'fd31::1', ip6B: 'fd31::2' };
}

/** Pids of the processes whose netns is `ns` (what a test started there, e.g. wireguard-go). */
export async function processesIn(ns: TestNetns): Promise<number[]> {
  const out: number[] = [];
  for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
    const s = await stat(`/proc/${pid}/ns/net`, { bigint: true }).catch(() => undefined);
    if (s && s.ino === ns.ino) out.push(Number(pid));
  }
  return out;
}

/** Kills (by pid) the processes left in the test's node netns, then deletes the netns. */
export async function delNodes(nodes: TestNodes, ...pods: TestNetns[]): Promise<void> {
  for (const ns of pods) for (const l of await linkNames(ns).catch(() => [])) await run('ip', ['-n', ns.name, 'link', 'del', 'dev', l]).catch(() => undefined);
  for (const ns of [nodes.a, nodes.b]) {
    for (const pid of await processesIn(ns)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  await delNetns(...pods, nodes.a, nodes.b);
}
