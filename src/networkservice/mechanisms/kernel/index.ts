/**
 * Kernel mechanism elements.
 *
 * `kernelMechanismClient(deps, options)` — client side. NSC: for each KERNEL preference sets `inodeURL` to
 * `deps.inodeUrl` (the NSC's own netns URL) and, if the preference has no `name`, the configured/NSURL
 * interface name or a generated one; if the request has no KERNEL preference it appends one. The generated
 * name is stored per connection so refresh and heal keep it. Forwarder (outgoing side): constructed without
 * `inodeUrl` and with `generateName: false` it just appends `{LOCAL, KERNEL, {}}` — the NSE fills in its
 * netns and name.
 *
 * `kernelMechanismServer(deps, options)` — server side (NSE): for a selected KERNEL mechanism sets
 * `inodeURL = deps.inodeUrl` and, if `name` is empty, the configured or a generated name (stable per
 * connection). Used as the KERNEL sub-element of `mechanismsServer`.
 *
 * Generated names follow upstream `nanoid.GenerateLinuxInterfaceName`: the first ≤10 characters of the
 * network service name, `-`, then random `[0-9A-Za-z]` up to 15 characters (`dataplane--aB3x`).
 * Mirrors `sdk/pkg/networkservice/common/mechanisms/kernel` and `sdk/pkg/tools/nanoid`. No background work.
 */
import { randomInt } from 'node:crypto';
import type { Connection, Mechanism } from '../../../api/gen/connection.js';
import { CLS_LOCAL, LINUX_IF_MAX_LENGTH, MECH_KERNEL, PARAM_INODE_URL, PARAM_NAME } from '../../../api/constants.js';
import { interfaceNameProblem } from '../../../api/nsurl.js';
import type { NetworkServiceElement } from '../../../core/chain.js';
import type { CallContext } from '../../../core/context.js';
import { InvalidArgumentError } from '../../../core/errors.js';
import { StateKey } from '../../../core/state.js';

export const KERNEL_CLIENT = 'kernel-client';
export const KERNEL_SERVER = 'kernel-server';
/** What the sdk sets in its own process; our NSC/NSE pass their netns URL explicitly in deps. */
export const DEFAULT_INODE_URL = 'file:///proc/thread-self/ns/net';
export const DEFAULT_GENERATE_NAME = true;
const NAME_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const MAX_PREFIX = LINUX_IF_MAX_LENGTH - 5;

/** The interface name the client element chose for this connection, kept across re-requests. */
export const KERNEL_CLIENT_INTERFACE_NAME = new StateKey<string>('kernel.client.interfaceName');
/** The interface name the server element generated for this connection. */
export const KERNEL_SERVER_INTERFACE_NAME = new StateKey<string>('kernel.server.interfaceName');

/**
 * `nanoid.GenerateLinuxInterfaceName`: ≤10 chars of the service name (characters not valid in an interface
 * name become `-`), `-`, random `[0-9A-Za-z]` to 15 characters total.
 */
export function generateInterfaceName(networkService: string, randomIndex: (n: number) => number = randomInt): string {
  const prefix = networkService.slice(0, MAX_PREFIX).replace(/[^A-Za-z0-9_.-]/g, '-');
  let out = `${prefix}-`;
  while (out.length < LINUX_IF_MAX_LENGTH) out += NAME_ALPHABET[randomIndex(NAME_ALPHABET.length)];
  return out;
}

export interface KernelDeps {
  /** netns URL of this process's network namespace; omitted on the forwarder's outgoing side. */
  readonly inodeUrl?: string;
  /** Random index source for name generation (tests). */
  readonly randomIndex?: (n: number) => number;
}

export interface KernelOptions {
  /** Fixed interface name (NSURL path or config); validated. */
  readonly interfaceName?: string;
  /** Generate a name when none is given (default true). */
  readonly generateName?: boolean;
}

interface KernelConfig {
  readonly inodeUrl?: string;
  readonly interfaceName?: string;
  readonly generateName: boolean;
  readonly randomIndex: (n: number) => number;
}

function resolve(deps: KernelDeps, options: KernelOptions): KernelConfig {
  if (options.interfaceName !== undefined) {
    const problem = interfaceNameProblem(options.interfaceName);
    if (problem) throw new InvalidArgumentError('interfaceName', options.interfaceName, problem);
  }
  return Object.freeze({
    inodeUrl: deps.inodeUrl,
    interfaceName: options.interfaceName,
    generateName: options.generateName ?? DEFAULT_GENERATE_NAME,
    randomIndex: deps.randomIndex ?? randomInt,
  });
}

function nameFor(cfg: KernelConfig, key: StateKey<string>, conn: Connection | undefined, ctx: CallContext): string | undefined {
  if (cfg.interfaceName) return cfg.interfaceName;
  const stored = ctx.state.get(key);
  if (stored) return stored;
  if (!cfg.generateName) return undefined;
  const name = generateInterfaceName(conn?.networkService ?? '', cfg.randomIndex);
  ctx.state.set(key, name);
  return name;
}

function fill(cfg: KernelConfig, key: StateKey<string>, m: Mechanism, conn: Connection | undefined, ctx: CallContext): void {
  m.parameters ??= {};
  if (cfg.inodeUrl !== undefined) m.parameters[PARAM_INODE_URL] = cfg.inodeUrl;
  if (!m.parameters[PARAM_NAME]) {
    const name = nameFor(cfg, key, conn, ctx);
    if (name) m.parameters[PARAM_NAME] = name;
  }
}

export function kernelMechanismClient(deps: KernelDeps = {}, options: KernelOptions = {}): NetworkServiceElement {
  const cfg = resolve(deps, options);
  return {
    name: KERNEL_CLIENT,
    requires: ['state'],
    async request(req, ctx, next) {
      const conn = req.connection;
      const prefs = req.mechanismPreferences.filter((m) => m.type === MECH_KERNEL);
      // A re-request keeps the name the connection already carries.
      const existing = conn?.mechanism?.type === MECH_KERNEL ? conn.mechanism.parameters?.[PARAM_NAME] : undefined;
      if (existing && !ctx.state.get(KERNEL_CLIENT_INTERFACE_NAME)) ctx.state.set(KERNEL_CLIENT_INTERFACE_NAME, existing);
      if (prefs.length === 0) {
        const m: Mechanism = { cls: CLS_LOCAL, type: MECH_KERNEL, parameters: {} };
        fill(cfg, KERNEL_CLIENT_INTERFACE_NAME, m, conn, ctx);
        req.mechanismPreferences.push(m);
      } else {
        for (const m of prefs) fill(cfg, KERNEL_CLIENT_INTERFACE_NAME, m, conn, ctx);
      }
      return next.request(req, ctx);
    },
    close: (conn, ctx, next) => next.close(conn, ctx),
  };
}

export function kernelMechanismServer(deps: KernelDeps = {}, options: KernelOptions = {}): NetworkServiceElement {
  const cfg = resolve(deps, options);
  return {
    name: KERNEL_SERVER,
    async request(req, ctx, next) {
      const m = req.connection?.mechanism;
      if (m && m.type === MECH_KERNEL) fill(cfg, KERNEL_SERVER_INTERFACE_NAME, m, req.connection, ctx);
      return next.request(req, ctx);
    },
    close: (conn, ctx, next) => next.close(conn, ctx),
  };
}
