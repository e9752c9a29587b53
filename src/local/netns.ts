/**
 * Named network namespaces for local pods (`ip netns`), and the nsm-ts links still present (alias
 * `nsm-ts:…`), which `nsm down` waits for. Every `ip` call goes through `ip()`, which names the command
 * in its error.
 */
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { promisify } from 'node:util';
import { DataplaneError } from '../core/errors.js';
import { sleep } from '../core/signals.js';

const run = promisify(execFile);
const ALIAS_PREFIX = 'nsm-ts:';

export async function ip(args: readonly string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args as string[], { encoding: 'utf8', timeout: 10_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new DataplaneError(`ip ${args.join(' ')}`, (e.stderr ?? e.message).trim(), { cause: err });
  }
}

export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

export function netnsExists(name: string): boolean {
  return existsSync(netnsPath(name));
}

/** Inode of a named netns, or undefined. */
export function netnsInode(name: string): number | undefined {
  try {
    return statSync(netnsPath(name)).ino;
  } catch {
    return undefined;
  }
}

/** Inode of the netns a process is in, or undefined. */
export function processNetnsInode(pid: number): number | undefined {
  try {
    return statSync(`/proc/${pid}/ns/net`).ino;
  } catch {
    return undefined;
  }
}

/** Creates the netns with `lo` up. */
export async function addNetns(name: string): Promise<void> {
  await ip(['netns', 'add', name]);
  try {
    await ip(['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    await deleteNetns(name).catch(() => undefined);
    throw err;
  }
}

export async function deleteNetns(name: string): Promise<void> {
  if (!netnsExists(name)) return;
  await ip(['netns', 'delete', name]);
}

/** Links with an nsm-ts alias in the host netns and in the given named netns. */
export async function nsmLinks(netns: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const scan = async (ns: string | undefined) => {
    let links: Array<{ ifname: string; ifalias?: string }>;
    try {
      links = JSON.parse(await ip([...(ns ? ['-n', ns] : []), '-j', 'link', 'show'])) as typeof links;
    } catch {
      return;
    }
    for (const l of links) if (l.ifalias?.startsWith(ALIAS_PREFIX)) out.push(`${ns ?? 'host'}/${l.ifname} (${l.ifalias})`);
  };
  await scan(undefined);
  for (const ns of netns) if (netnsExists(ns)) await scan(ns);
  return out;
}

/** Waits until no nsm-ts link is left and the deleted netns are gone; returns what is left on timeout. */
export async function waitLinksGone(netns: readonly string[], deleted: readonly string[], timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = [...(await nsmLinks(netns)), ...deleted.filter(netnsExists).map((n) => `netns ${n}`)];
    if (left.length === 0 || Date.now() >= deadline) return left;
    await sleep(100);
  }
}
