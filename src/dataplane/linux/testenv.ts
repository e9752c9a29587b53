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
