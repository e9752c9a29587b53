/**
 * The Linux data plane's tunnel ends (one end of a remote connection): runs what `tunnel-plan.ts`
 * decided. A VXLAN device or a wireguard-go tun is made in the tunnel netns (where its UDP socket stays)
 * under a name derived from the owner (`tunnelTmpName`), given the owner's alias there, moved into the
 * pod netns, renamed and configured like a veth end. A fresh create that fails leaves nothing: the
 * device is deleted wherever it got to and a wireguard-go that outlives its device is killed (by the pid
 * that holds its UAPI socket, never by name). A VNI already used in the tunnel netns is AlreadyExists
 * naming the VNI; a listen port in use is an error naming the port.
 */
import { AlreadyExistsError, DataplaneError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { parseAlias } from '../spec.js';
import { tunnelTmpName, type WantTunnel, type WantVxlan, type WantWireguard } from '../tunnel-spec.js';
import type { Side, TunnelState } from '../types.js';
import { IpBatchFailure, PING_GROUP_RANGE, type Ip, type NetnsPath } from './ip.js';
import { endState, readEnd, readLink } from './read.js';
import { L, endMac } from './state.js';
import { moveLines, planTunnel, podLines, vxlanCreateLine } from './tunnel-plan.js';
import { awaitListenPort, checkListenPort, configure, readConfig, reapWireguardGo, startWireguardGo, wireguardPid, type WgConfig } from './wireguard.js';

/** Runs the removal of another owner's link under that owner's lock if it is an orphan; false if it is live. */
export type Claim = (owner: string, fn: () => Promise<void>) => Promise<boolean>;

export interface TunnelWriterOptions {
  wireguardBin?: string;
  nsenterBin?: string;
  /** Who holds a VNI (`vni|port`) in the tunnel netns, for the AlreadyExists message. */
  vniHolder?: (vni: number, port: number) => string | undefined;
}

function sig(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {};
}

const VNI_TAKEN = /VNI already exists|specified VNI/;

export class TunnelWriter {
  readonly #ip: Ip;
  readonly #log: Logger;
  readonly #tunnel: NetnsPath;
  readonly #opts: TunnelWriterOptions;

  constructor(ip: Ip, log: Logger, tunnelPath: NetnsPath, opts: TunnelWriterOptions = {}) {
    this.#ip = ip;
    this.#log = log;
    this.#tunnel = tunnelPath;
    this.#opts = opts;
  }

  /** Creates or converges `w`'s end in the pod netns at `pod`. */
  async ensure(w: WantTunnel, pod: NetnsPath, live: (owner: string) => boolean, claim: Claim, signal?: AbortSignal): Promise<TunnelState> {
    const s = await readEnd(this.#ip, pod, w.side, w.end.name, w.owner, signal);
    const link = s.links.get(w.end.name);
    const ours = link && parseAlias(link.alias)?.owner === w.owner && link.kind === 'tun';
    const wg = ours && w.tunnel.kind === 'wireguard' ? await readConfig(tunnelTmpName('wireguard', w.owner, w.side), signal) : undefined;
    const plan = planTunnel(w, s, wg, live);
    const pgr = s.pingGroupRange !== PING_GROUP_RANGE;
    if (plan.kind === 'converge') {
      if (plan.wireguard.length && w.tunnel.kind === 'wireguard') await this.#reconfigure(w.owner, w.side, w.tunnel, wg!, signal);
      await this.#ip.batch(pod, plan.lines, { op: 'converge tunnel end', target: w.owner, pingGroupRange: pgr, ...sig(signal) });
      return { end: { ifindex: plan.link.ifindex, mac: plan.link.mac, created: false }, actions: [...plan.actions, ...(pgr ? [`${w.side}: set ping_group_range`] : [])] };
    }
    const actions: string[] = [];
    if (plan.kind === 'recreate') {
      const del = async () => void (await this.deleteEnd(pod, plan.link.name, plan.link.kind, plan.owner, w.side, signal));
      if (plan.owner === w.owner) await del();
      else if (!(await claim(plan.owner, del))) throw new AlreadyExistsError(`${w.side} interface ${plan.link.name} already exists in netns ${w.end.netns}: it belongs to connection ${plan.owner}`);
      actions.push(`${w.side}: delete ${plan.why}`);
    }
    const created = await this.create(w, pod, pgr, signal);
    return { end: created.end, actions: [...actions, ...created.actions] };
  }

  /** Converges a running WireGuard end's settings over UAPI; a new listen port is checked free first and bound after. */
  async #reconfigure(owner: string, side: Side, want: WantWireguard, have: WgConfig, signal?: AbortSignal): Promise<void> {
    const dev = tunnelTmpName('wireguard', owner, side);
    const pid = have.listenPort !== want.listenPort ? await wireguardPid(dev) : undefined;
    await checkListenPort(pid, want.listenPort);
    await configure(dev, want, signal, have);
    await awaitListenPort(pid, want.listenPort, signal);
  }

  /** A fresh create: the device in the tunnel netns, configured, moved into the pod and configured there. */
  async create(w: WantTunnel, pod: NetnsPath, pingGroupRange: boolean, signal?: AbortSignal): Promise<TunnelState> {
    const tmp = tunnelTmpName(w.tunnel.kind, w.owner, w.side);
    const leftovers = await this.#clearTmp(tmp, w, signal);
    let pid: number | undefined;
    let stage: 'tunnel' | 'pod-tmp' | 'pod' = 'tunnel';
    const actions = [...leftovers];
    try {
      if (w.tunnel.kind === 'vxlan') {
        await this.#createVxlan(tmp, w.owner, w.tunnel, endMac(w.owner, w.side), signal);
        actions.push(`create vxlan ${tmp} (vni ${w.tunnel.vni})`);
      } else {
        await startWireguardGo(this.#tunnel, tmp, this.#opts.wireguardBin, this.#opts.nsenterBin, signal);
        pid = await wireguardPid(tmp);
        actions.push(`start wireguard-go ${tmp}`);
        await checkListenPort(pid, w.tunnel.listenPort);
        await configure(tmp, w.tunnel, signal);
        await awaitListenPort(pid, w.tunnel.listenPort, signal);
        actions.push(`configure wireguard (listen port ${w.tunnel.listenPort})`);
      }
      await this.#ip.batch(this.#tunnel, moveLines(tmp, w.end.alias, pod), { op: 'move tunnel end', target: w.owner, ...sig(signal) });
      stage = 'pod-tmp';
      const lines = podLines(tmp, w);
      let out: unknown[];
      try {
        out = await this.#ip.batch(pod, lines, { op: 'configure tunnel end', target: w.owner, pingGroupRange, ...sig(signal) });
      } catch (err) {
        const f = err instanceof DataplaneError && err.cause instanceof IpBatchFailure ? err.cause : undefined;
        if (!f || f.index > 0) stage = 'pod';
        if (f?.index === 0 && /File exists/.test(f.reason)) throw await this.#taken(w, pod, err);
        throw err;
      }
      actions.push(`${w.side}: move ${tmp} into the pod`, ...lines.slice(0, -1).map((l) => `${w.side}: ${l.step}`), ...(pingGroupRange ? [`${w.side}: set ping_group_range`] : []));
      return { end: endState(out, w.end.name, true), actions };
    } catch (err) {
      throw await this.#rollback(err, w, tmp, pod, stage, pid);
    }
  }

  /** The end's name was taken between our read and the rename (another create won): AlreadyExists naming who has it. */
  async #taken(w: WantTunnel, pod: NetnsPath, cause: unknown): Promise<AlreadyExistsError> {
    const other = parseAlias((await readLink(this.#ip, pod, w.end.name, w.owner).catch(() => undefined))?.alias);
    const who = other ? `: it belongs to connection ${other.owner}` : ' and is not owned by nsm-ts';
    return new AlreadyExistsError(`${w.side} interface ${w.end.name} already exists in netns ${w.end.netns}${who}`, { cause });
  }

  async #createVxlan(tmp: string, owner: string, t: WantVxlan, mac: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.#ip.batch(this.#tunnel, [vxlanCreateLine(tmp, t, mac)], { op: 'create vxlan', target: owner, ...sig(signal) });
    } catch (err) {
      if (err instanceof DataplaneError && VNI_TAKEN.test(err.message)) {
        const holder = this.#opts.vniHolder?.(t.vni, t.port);
        throw new AlreadyExistsError(`VXLAN VNI ${t.vni} (UDP port ${t.port}) is already in use in the tunnel netns${holder ? ` by connection ${holder}` : ''}`, { cause: err });
      }
      throw err;
    }
  }

  /** A device or wireguard-go of this owner left in the tunnel netns by a create cut short: gone before a new create. */
  async #clearTmp(tmp: string, w: WantTunnel, signal?: AbortSignal): Promise<string[]> {
    const kind = w.tunnel.kind === 'vxlan' ? 'vxlan' : 'tun';
    const left = await readLink(this.#ip, this.#tunnel, tmp, w.owner, signal);
    const actions: string[] = [];
    if (left) actions.push(...(await this.deleteEnd(this.#tunnel, tmp, left.kind ?? kind, w.owner, w.side, signal)).map((a) => `tunnel netns: ${a}`));
    if (w.tunnel.kind === 'wireguard') actions.push(...(await reapWireguardGo(tmp, await wireguardPid(tmp))));
    return actions;
  }

  /** Deletes what a failed create made, wherever it got to; returns the error to throw. */
  async #rollback(err: unknown, w: WantTunnel, tmp: string, pod: NetnsPath, stage: 'tunnel' | 'pod-tmp' | 'pod', pid: number | undefined): Promise<unknown> {
    try {
      // Wherever the device got to (a cancelled batch may have moved it without saying so): the tunnel
      // netns and the pod under the tmp name (both derived from the owner), the end's name once renamed.
      if (stage === 'pod') await this.deleteLink(pod, w.end.name, w.owner);
      await this.deleteLink(pod, tmp, w.owner);
      await this.deleteLink(this.#tunnel, tmp, w.owner);
      if (w.tunnel.kind === 'wireguard') await reapWireguardGo(tmp, pid ?? (await wireguardPid(tmp)));
      this.#log.debug({ connId: w.owner, step: err instanceof DataplaneError ? err.step : undefined }, 'rolled back fresh tunnel create');
      return err;
    } catch (rbErr) {
      if (err instanceof DataplaneError) return new DataplaneError(err.step, `${err.message.slice(err.step.length + 2)} (rollback failed: ${errorMessage(rbErr)})`, { cause: err.cause });
      return err;
    }
  }

  /**
   * Deletes the end `name` (of link kind `kind`) of `owner`'s `side` in the netns at `path`; for a
   * WireGuard end, also makes sure its wireguard-go is gone. Returns the actions.
   */
  async deleteEnd(path: NetnsPath, name: string, kind: string | undefined, owner: string, side: Side, signal?: AbortSignal): Promise<string[]> {
    const tmp = tunnelTmpName('wireguard', owner, side);
    const pid = kind === 'tun' ? await wireguardPid(tmp) : undefined;
    await this.deleteLink(path, name, owner, signal);
    return [`delete ${kind ?? 'link'} ${name}`, ...(kind === 'tun' ? await reapWireguardGo(tmp, pid) : [])];
  }

  /**
   * Removes `owner`'s end `name` in the pod (if its alias is ours). When there is none, also what a create
   * cut short may have left in the tunnel netns (a device under its tmp name, a wireguard-go).
   */
  async remove(owner: string, side: Side, name: string, pod: NetnsPath | undefined, signal?: AbortSignal): Promise<void> {
    const link = pod ? await readLink(this.#ip, pod, name, owner, signal) : undefined;
    const a = parseAlias(link?.alias);
    if (link && a && a.owner === owner && a.side === side && (link.kind === 'vxlan' || link.kind === 'tun')) {
      await this.deleteEnd(pod!, name, link.kind, owner, side, signal);
      return;
    }
    for (const kind of ['vxlan', 'wireguard'] as const) {
      const tmp = tunnelTmpName(kind, owner, side);
      const left = await readLink(this.#ip, this.#tunnel, tmp, owner, signal);
      if (left && parseAlias(left.alias)?.owner === owner) await this.deleteEnd(this.#tunnel, tmp, left.kind, owner, side, signal);
      else if (kind === 'wireguard') await reapWireguardGo(tmp, await wireguardPid(tmp));
    }
  }

  /** Deletes a link; a link already gone is success. */
  async deleteLink(path: NetnsPath, name: string, target: string, signal?: AbortSignal): Promise<void> {
    const failures = await this.#ip.batchAll(path, [L.del(name)], { op: 'delete link', target, ...sig(signal) });
    const real = failures.filter((f) => !/Cannot find device|does not exist/.test(f.reason));
    if (real.length) throw new DataplaneError('delete link', `${name} in netns ${path}: ${real[0]!.reason}`);
  }
}
