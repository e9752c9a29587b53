/**
 * xconnect (forwarder server) — programs the kernel for a connection, in one place, on the return path
 * of Request, once both sides are known: the NSC-side mechanism (selected by `mechanisms`) and the
 * NSE-side mechanism (stored by `mechanism-translation`). Three shapes (`spec.ts`): KERNEL↔KERNEL, a veth
 * pair (`DataPlane.ensure`); KERNEL↔VXLAN/WIREGUARD on the client's node, the client's tunnel end; and
 * VXLAN/WIREGUARD↔KERNEL on the endpoint's node, the endpoint's tunnel end (`DataPlane.ensureTunnel`).
 * It asks the DataPlane to converge to the desired state (links, addresses, routes, MTU, up) — a
 * re-Request converges again and keeps a healthy link as it is. The remote mechanism's parameters are
 * checked, and an answer with a mechanism type this forwarder did not offer (`filter-mechanisms`
 * records what it offered) is an `InvalidArgumentError` naming that type.
 * Guarantees:
 * - Request: the data plane holds the connection (its id is the pair's owner) once Request returns; the
 *   returned connection carries the MTU the pair was given.
 * - A data-plane failure is thrown as it came (a DataplaneError names the step; the data plane has rolled
 *   back a fresh create). On a first Request the downstream connection is closed again (on its own
 *   deadline, `removeTimeout`, so what the endpoint allocated goes back also when the caller went away);
 *   on a re-Request it is kept, and so is the last spec.
 * - Close removes exactly what this connection owns (the spec of its last successful Request, else the
 *   one its mechanisms describe), then always calls next; a failed removal is logged, not thrown.
 * - The removal finishes even when the caller goes away: it runs on its own deadline (`removeTimeout`),
 *   not on the call's signal, and Close returns only after it (so `begin` still serializes it with the
 *   connection's next Request). A caller that left is logged at info; what a removal still leaves is the
 *   orphan GC's (the forwarder runs it periodically).
 * The data plane keeps the inventory of connections it holds (adoption and orphan removal at forwarder
 * start are its business); xconnect only calls it.
 *
 * Placement: forwarder server chain, after `begin` and `mechanisms`, before `connect`. It reads
 * `NSE_SIDE_MECHANISM`, written further down the chain by `mechanism-translation` (in connect's client
 * chain) before Request returns here, so it cannot be declared in `requires`. No background work.
 * Mirrors the role of sdk-vpp kernel mechanisms + sdk-kernel `connectioncontextkernel`, shaped like
 * kubeslice's kernel forwarder.
 */
import type { Connection, Mechanism } from '../../api/gen/connection.js';
import { MECH_KERNEL, PARAM_NAME } from '../../api/constants.js';
import type { NetworkServiceElement } from '../../core/chain.js';
import { withContext, type CallContext } from '../../core/context.js';
import { InvalidArgumentError, errorMessage } from '../../core/errors.js';
import { linkSignals } from '../../core/signals.js';
import { StateKey } from '../../core/state.js';
import { checkInterfaceName } from '../../dataplane/spec.js';
import type { DataPlane, OpOptions } from '../../dataplane/types.js';
import { NSE_SIDE_MECHANISM } from '../mechanisms/mechanism-translation/index.js';
import { OFFERED_MECHANISMS } from '../mechanisms/filter-mechanisms/index.js';
import { WIREGUARD_CLIENT_END, WIREGUARD_SERVER_END, checkKey, generateKeyPair } from '../mechanisms/wireguard/index.js';
import { DEFAULT_MTU, isRemote, kernelParams, specFor, type LocalParts, type XconnectSpec } from './spec.js';

export { DEFAULT_MTU, specFor, type XconnectSpec } from './spec.js';

/** Upper bound (ms) of removing a connection's kernel objects on Close, whatever the caller's deadline. */
export const DEFAULT_REMOVE_TIMEOUT = 30_000;

const SPEC = new StateKey<XconnectSpec>('xconnect/spec');

export const XCONNECT = 'xconnect';

export interface XconnectDeps {
  readonly dataplane: DataPlane;
}

export interface XconnectOptions {
  /** Upper bound (ms) of the removal on Close (default DEFAULT_REMOVE_TIMEOUT). */
  readonly removeTimeout?: number;
}

/**
 * The client's end is known before the Request goes on: a malformed kernel one (no netns, a name the
 * kernel refuses) is INVALID_ARGUMENT here, before anything downstream is set up. Its netns is resolved by
 * the data plane (NOT_FOUND when it does not exist). A remote one was checked by its mechanism element.
 */
function checkClientEnd(m: Mechanism | undefined): void {
  if (isRemote(m)) return;
  if (m?.type !== MECH_KERNEL) throw new InvalidArgumentError('nsc.mechanism.type', m?.type ?? '', 'not supported by this forwarder');
  const { name } = kernelParams(m, 'nsc');
  checkInterfaceName(`nsc.mechanism.parameters.${PARAM_NAME}`, name);
}

function localParts(ctx: CallContext, forRemoval = false): LocalParts {
  return {
    wireguardClient: ctx.state.get(WIREGUARD_CLIENT_END),
    wireguardServer: ctx.state.get(WIREGUARD_SERVER_END),
    offered: forRemoval ? undefined : ctx.state.get(OFFERED_MECHANISMS),
    forRemoval,
  };
}

async function ensure(dp: DataPlane, x: XconnectSpec, opts: OpOptions): Promise<string[]> {
  return x.kind === 'pair' ? (await dp.ensure(x.spec, opts)).actions : (await dp.ensureTunnel(x.spec, opts)).actions;
}

function remove(dp: DataPlane, x: XconnectSpec, opts: OpOptions): Promise<void> {
  return x.kind === 'pair' ? dp.remove(x.spec, opts) : dp.removeTunnel(x.spec, opts);
}

export function xconnectServer(deps: XconnectDeps, options: XconnectOptions = {}): NetworkServiceElement {
  const removeTimeout = options.removeTimeout ?? DEFAULT_REMOVE_TIMEOUT;
  return {
    name: XCONNECT,
    requires: ['begin'],
    async request(req, ctx, next) {
      const established = ctx.state.get(SPEC) !== undefined;
      checkClientEnd(req.connection?.mechanism);
      const conn = await next.request(req, ctx);
      try {
        const spec = specFor(conn, ctx.state.get(NSE_SIDE_MECHANISM), localParts(ctx));
        const t0 = performance.now();
        const actions = await ensure(deps.dataplane, spec, { signal: ctx.signal });
        ctx.state.set(SPEC, spec);
        conn.context ??= { ipContext: undefined, dnsContext: undefined, ethernetContext: undefined, extraContext: {}, MTU: 0 };
        conn.context.MTU = spec.spec.mtu ?? DEFAULT_MTU;
        ctx.log.debug({ kind: spec.kind, actions, ms: +(performance.now() - t0).toFixed(1) }, 'data plane converged');
        if (actions.length > 0 && established) ctx.log.info({ actions }, 'data plane repaired');
        return conn;
      } catch (err) {
        if (!established) {
          // What the rest of the chain allocated for this attempt goes back, also when the caller went away.
          const own = linkSignals([], removeTimeout);
          try {
            await next.close(conn, withContext(ctx, { signal: own.signal }));
          } catch (e) {
            ctx.log.warn({ err: errorMessage(e) }, 'close after failed data plane setup failed');
          } finally {
            own.dispose();
          }
        }
        throw err;
      }
    },
    async close(conn, ctx, next) {
      const spec = ctx.state.get(SPEC) ?? (await removalSpec(deps.dataplane, conn, ctx));
      if (spec) {
        const own = linkSignals([], removeTimeout);
        try {
          await remove(deps.dataplane, spec, { signal: own.signal });
          ctx.state.delete(SPEC);
          if (ctx.signal.aborted) ctx.log.info('the caller went away during Close; the data plane was removed all the same');
        } catch (err) {
          ctx.log.error({ err: errorMessage(err), callerGone: ctx.signal.aborted }, 'removing the data plane failed');
        } finally {
          own.dispose();
        }
      }
      return next.close(conn, ctx);
    },
  };
}

/**
 * What a Close removes when this forwarder kept no spec (it restarted since the Request): the spec the
 * mechanisms describe. A WireGuard end's keys only have to be well-formed for a removal (it finds the end
 * by owner and side): the key the data plane still has, else a throwaway one.
 */
async function removalSpec(dp: DataPlane, conn: Connection, ctx: CallContext): Promise<XconnectSpec | undefined> {
  let x: XconnectSpec;
  try {
    x = specFor(conn, ctx.state.get(NSE_SIDE_MECHANISM), localParts(ctx, true));
  } catch {
    return undefined;
  }
  if (x.kind !== 'tunnel' || x.spec.tunnel.kind !== 'wireguard') return x;
  const t = x.spec.tunnel;
  const privateKey = t.privateKey || (await dp.tunnelPrivateKey(x.spec.owner, { signal: ctx.signal }).catch(() => undefined)) || generateKeyPair().privateKey;
  const peerPublicKey = safeKey(t.peerPublicKey) ?? generateKeyPair().publicKey;
  return { kind: 'tunnel', spec: { ...x.spec, tunnel: { ...t, privateKey, peerPublicKey } } };
}

function safeKey(k: string): string | undefined {
  try {
    return checkKey('key', k);
  } catch {
    return undefined;
  }
}
