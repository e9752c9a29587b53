/**
 * `mechanismTranslationClient()` — first element of the forwarder's outgoing (client) chain. The request
 * sent to the NSE carries no mechanism preferences of the NSC (the client mechanism elements after this one
 * append the forwarder's own, e.g. `{LOCAL, KERNEL, {}}`) and, on a re-request, the NSE-side mechanism that
 * was selected last time (so the NSE treats it as a refresh). The NSE's selected mechanism is remembered per
 * connection (`NSE_SIDE_MECHANISM`) and the response carries the NSC-side mechanism again. Close sends the
 * remembered NSE-side mechanism and forgets it.
 * Mirrors `sdk/pkg/networkservice/common/mechanismtranslation`. No background work.
 */
import type { Mechanism } from '../../../api/gen/connection.js';
import { cloneConnection, cloneRequest } from '../../../api/helpers.js';
import type { NetworkServiceElement } from '../../../core/chain.js';
import { StateKey } from '../../../core/state.js';

export const MECHANISM_TRANSLATION = 'mechanism-translation';

/** The mechanism the next hop (NSE side) selected for this connection. */
export const NSE_SIDE_MECHANISM = new StateKey<Mechanism>('mechanismTranslation.nseSideMechanism');

function copy(m: Mechanism | undefined): Mechanism | undefined {
  return m ? { cls: m.cls, type: m.type, parameters: { ...m.parameters } } : undefined;
}

export function mechanismTranslationClient(): NetworkServiceElement {
  return {
    name: MECHANISM_TRANSLATION,
    requires: ['state'],
    async request(req, ctx, next) {
      const clientReq = cloneRequest(req);
      clientReq.mechanismPreferences = [];
      clientReq.connection!.mechanism = copy(ctx.state.get(NSE_SIDE_MECHANISM));
      const clientConn = await next.request(clientReq, ctx);
      const selected = copy(clientConn.mechanism);
      if (selected) ctx.state.set(NSE_SIDE_MECHANISM, selected);
      const conn = cloneConnection(clientConn);
      conn.mechanism = copy(req.connection?.mechanism);
      return conn;
    },
    async close(conn, ctx, next) {
      const clientConn = cloneConnection(conn);
      clientConn.mechanism = copy(ctx.state.delete(NSE_SIDE_MECHANISM));
      return next.close(clientConn, ctx);
    },
  };
}
