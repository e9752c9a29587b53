/**
 * xconnect (forwarder server) — programs the kernel for a local kernel↔kernel connection, in one place,
 * on the return path of Request, once both sides are known: the NSC-side mechanism (selected by
 * `mechanisms`, carrying the client's netns `inodeURL` and interface name) and the NSE-side mechanism
 * (stored by `mechanism-translation`). It asks the DataPlane to converge to the desired state (veth pair,
 * addresses, routes, MTU, up) — a re-Request converges again and keeps a healthy link as it is.
 * If the data plane fails on a first Request, the downstream connection is closed again and the
 * error names the step. Close removes exactly what this connection owns, then always calls next.
 *
 * Placement: forwarder server chain, after `mechanisms`, before `connect`. Mirrors the role of sdk-vpp
 * kernel mechanisms + sdk-kernel `connectioncontextkernel`, shaped like kubeslice's kernel forwarder.
 */
import type { Connection, Mechanism } from '../../api/gen/connection.js';
import { MECH_KERNEL, PARAM_INODE_URL, PARAM_NAME } from '../../api/constants.js';
import type { NetworkServiceElement } from '../../core/chain.js';
import { InvalidArgumentError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { StateKey } from '../../core/state.js';
import { endsFromIpContext } from '../../dataplane/ipcontext.js';
import type { DataPlane, PairSpec } from '../../dataplane/types.js';

export const DEFAULT_MTU = 1500;

const SPEC = new StateKey<PairSpec>('xconnect/spec');

export interface XconnectDeps {
  readonly dataplane: DataPlane;
  readonly log: Logger;
  /** Returns the NSE-side mechanism chosen downstream for this connection (set by mechanism-translation). */
  readonly nseMechanism: (ctx: Parameters<NetworkServiceElement['request']>[1]) => Mechanism | undefined;
  /** Kept up to date with the owners (connection ids) whose links exist; read by the orphan collector. */
  readonly owners?: Set<string>;
}

function kernelParams(m: Mechanism | undefined, side: string): { netns: string; name: string } {
  if (!m || m.type !== MECH_KERNEL) throw new InvalidArgumentError(`${side}.mechanism.type`, m?.type ?? '', `only ${MECH_KERNEL} is supported by this forwarder`);
  const netns = m.parameters[PARAM_INODE_URL] ?? '';
  const name = m.parameters[PARAM_NAME] ?? '';
  if (!netns) throw new InvalidArgumentError(`${side}.mechanism.parameters.${PARAM_INODE_URL}`, netns, 'the netns of the interface is required');
  if (!name) throw new InvalidArgumentError(`${side}.mechanism.parameters.${PARAM_NAME}`, name, 'the interface name is required');
  return { netns, name };
}

export function specFor(conn: Connection, nseMech: Mechanism | undefined): PairSpec {
  const nsc = kernelParams(conn.mechanism, 'nsc');
  const nse = kernelParams(nseMech, 'nse');
  const ends = endsFromIpContext(conn.context?.ipContext);
  const mtu = conn.context?.MTU || DEFAULT_MTU;
  return { owner: conn.id, nsc: { ...nsc, ...ends.nsc }, nse: { ...nse, ...ends.nse }, mtu };
}

export function xconnectServer(deps: XconnectDeps): NetworkServiceElement {
  const log = deps.log.child({ element: 'xconnect' });
  return {
    name: 'xconnect',
    requires: ['begin'],
    async request(req, ctx, next) {
      const established = ctx.state.get(SPEC) !== undefined;
      const conn = await next.request(req, ctx);
      try {
        const spec = specFor(conn, deps.nseMechanism(ctx));
        const t0 = performance.now();
        const result = await deps.dataplane.ensure(spec, { signal: ctx.signal });
        ctx.state.set(SPEC, spec);
        deps.owners?.add(spec.owner);
        conn.context ??= { ipContext: undefined, dnsContext: undefined, ethernetContext: undefined, extraContext: {}, MTU: 0 };
        conn.context.MTU = spec.mtu ?? DEFAULT_MTU;
        log.debug({ connId: conn.id, actions: result.actions, ms: +(performance.now() - t0).toFixed(1) }, 'data plane converged');
        if (result.actions.length > 0 && established) log.info({ connId: conn.id, actions: result.actions }, 'data plane repaired');
        return conn;
      } catch (err) {
        if (!established) {
          await next.close(conn, ctx).catch((e: unknown) => log.warn({ connId: conn.id, err: errorMessage(e) }, 'close after failed data plane setup failed'));
        }
        throw err;
      }
    },
    async close(conn, ctx, next) {
      const spec = ctx.state.get(SPEC) ?? trySpec(conn, deps.nseMechanism(ctx));
      if (spec) {
        try {
          await deps.dataplane.remove(spec, { signal: ctx.signal });
          ctx.state.delete(SPEC);
          deps.owners?.delete(spec.owner);
        } catch (err) {
          log.error({ connId: conn.id, err: errorMessage(err) }, 'removing the data plane failed');
        }
      }
      return next.close(conn, ctx);
    },
  };
}

function trySpec(conn: Connection, nseMech: Mechanism | undefined): PairSpec | undefined {
  try {
    return specFor(conn, nseMech);
  } catch {
    return undefined;
  }
}
