/**
 * The invariants every fuzz run ends with, for any mesh the driver can reach: the servers still answer
 * (health, a valid Request), no connection outlives its Close, the NSE's address pool is whole again, the
 * registry holds only live registrations. Kernel checks differ per data plane and are passed in.
 * Each check returns the problems it found (empty: fine), so one run reports all of them at once.
 */
import { MECH_KERNEL, PARAM_INODE_URL, PARAM_NAME } from '../../api/constants.js';
import type { Connection } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { errorMessage } from '../../core/errors.js';
import type { FuzzDriver, FuzzUrls } from './driver.js';

/** What the mesh looked like before the fuzz touched it. */
export interface Baseline {
  /** Valid connections the NSE gives before its pool is exhausted. */
  readonly capacity: number;
  readonly registry: { nses: string[]; nss: string[] };
}

export interface InvariantHooks {
  readonly urls: FuzzUrls;
  /** A valid first Request from a test pod. */
  validRequest(fresh: () => string): NetworkServiceRequest;
  /** Upper bound of the pool probe (a little above the pool's size). */
  readonly maxCapacity: number;
  /** How long an abandoned Request may still be at work on the servers (ms). */
  readonly settleMs: number;
  /**
   * Kernel problems while the client still holds connections: links outside the test's pods, links of no
   * live connection, and (given the forwarder's connections, read after the links) a connection without
   * its link.
   */
  kernelWhileHeld(forwarderConnections: () => Promise<Connection[]>): Promise<string[]>;
  /** Kernel problems once everything is closed (any nsm-ts link left). */
  kernelAfterClose(): Promise<string[]>;
}

export async function baseline(d: FuzzDriver, h: InvariantHooks): Promise<Baseline> {
  const cap = await d.capacity(h.validRequest, h.maxCapacity);
  if (cap.count === 0) throw new Error(`the mesh gives no connection before the fuzz starts: ${cap.stop}`);
  return { capacity: cap.count, registry: await d.registryNames(h.urls.registry) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function attempt(what: string, fn: () => Promise<string[]>): Promise<string[]> {
  try {
    return await fn();
  } catch (err) {
    return [`${what}: ${errorMessage(err).slice(0, 300)}`];
  }
}

async function leftConnections(d: FuzzDriver): Promise<string[]> {
  const out: string[] = [];
  for (const t of ['nsmgr', 'forwarder', 'nse'] as const) {
    const left = await d.connections(t);
    if (left.length > 0) out.push(`${t} still holds ${left.length} connection(s) after every Close: ${left.map((c) => c.id.slice(0, 40)).join(', ')}`);
  }
  return out;
}

/**
 * Ends a run: checks the kernel while connections are held, drains the client, checks that nothing
 * outlives its Close (strictly when the client abandoned no Request; else after closing what the servers
 * still show), then health, the pool and the registry.
 */
export async function checkInvariants(d: FuzzDriver, h: InvariantHooks, base: Baseline): Promise<string[]> {
  const problems: string[] = [...d.violations];
  // An abandoned Request may still be at work: let it settle, and check again once more before reporting.
  if (d.abandoned > 0) await sleep(h.settleMs);
  let held = await attempt('kernel check while held', () => h.kernelWhileHeld(() => d.connections('forwarder')));
  if (held.length > 0 && d.abandoned > 0) {
    await sleep(h.settleMs);
    held = await attempt('kernel check while held', () => h.kernelWhileHeld(() => d.connections('forwarder')));
  }
  problems.push(...held);
  problems.push(...(await attempt('drain', () => d.drain())));
  if (d.abandoned === 0) {
    problems.push(...(await attempt('connections after Close', () => leftConnections(d))));
  }
  await attempt('recover', async () => (await d.recover(d.abandoned > 0 ? h.settleMs : 0, d.abandoned > 0 ? 10 : 1), []));
  if (d.abandoned > 0) problems.push(...(await attempt('connections after recovery', () => leftConnections(d))));
  problems.push(...(await attempt('kernel check after Close', () => h.kernelAfterClose())));
  for (const name of ['registry', 'nsmgr', 'forwarder', 'nse'] as const) problems.push(...(await attempt(`health of ${name}`, async () => (await d.health(name, h.urls[name]), []))));
  problems.push(
    ...(await attempt('pool', async () => {
      const cap = await d.capacity(h.validRequest, h.maxCapacity);
      return cap.count === base.capacity ? [] : [`the NSE's pool gives ${cap.count} connections, ${base.capacity} before the run (stopped by ${cap.stop})`];
    })),
  );
  problems.push(...(await attempt('kernel check after the pool probe', () => h.kernelAfterClose())));
  problems.push(
    ...(await attempt('registry', async () => {
      const now = await d.registryNames(h.urls.registry);
      const out: string[] = [];
      if (now.nses.join('\n') !== base.registry.nses.join('\n')) out.push(`registry NSEs ${JSON.stringify(now.nses)}, before the run ${JSON.stringify(base.registry.nses)}`);
      if (now.nss.join('\n') !== base.registry.nss.join('\n')) out.push(`registry services ${JSON.stringify(now.nss)}, before the run ${JSON.stringify(base.registry.nss)}`);
      return out;
    })),
  );
  return problems;
}

/** A link as the kernel checks see it: where, which name, whose (alias owner, if ours). */
export interface SeenLink {
  readonly netns: string;
  readonly name: string;
  readonly owner: string | undefined;
}

/** Connections the forwarder holds whose client-side link (netns, name, owner = its id there) is not in `links`. */
export function missingLinks(conns: readonly Connection[], links: readonly SeenLink[]): string[] {
  const out: string[] = [];
  for (const c of conns) {
    const m = c.mechanism;
    if (m?.type !== MECH_KERNEL) continue;
    const netns = m.parameters[PARAM_INODE_URL] ?? '';
    const name = m.parameters[PARAM_NAME] ?? '';
    const l = links.find((x) => x.netns === netns && x.name === name);
    if (!l) out.push(`the forwarder holds connection ${c.id} but its interface ${name} in ${netns} is gone`);
    else if (l.owner !== c.id) out.push(`the forwarder holds connection ${c.id} but its interface ${name} in ${netns} belongs to ${l.owner ?? 'no connection'}`);
  }
  return out;
}
