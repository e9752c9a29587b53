/**
 * `filterMechanismsClient()` — last mechanism element of the forwarder's outgoing chain, after the client
 * mechanism elements and after `round-robin` has chosen the next hop (`CLIENT_URL`): a next hop on this
 * node (`unix:`/`inode:`) gets only the LOCAL preferences, any other (`tcp:`, a remote nsmgr) only the
 * REMOTE ones. What is left is recorded per connection (`OFFERED_MECHANISMS`) so `xconnect` can refuse
 * an answer with a mechanism that was not offered. Nothing left → `InvalidArgumentError` naming
 * `mechanism_preferences`, before anything is sent (e.g. a remote endpoint but no tunnel IP on this node).
 * Not in nsmgr: nsmgr relays the REMOTE preferences it receives over tcp to its forwarder over unix.
 * Mirrors `sdk/pkg/networkservice/common/filtermechanisms` (client). No background work.
 */
import { CLS_LOCAL, CLS_REMOTE } from '../../../api/constants.js';
import type { NetworkServiceElement } from '../../../core/chain.js';
import { InvalidArgumentError } from '../../../core/errors.js';
import { StateKey } from '../../../core/state.js';
import { CLIENT_URL } from '../../client-url/index.js';
import { isLocalUrl } from '../common/index.js';

export const FILTER_MECHANISMS = 'filter-mechanisms';

/** Mechanism types sent to the next hop on the last Request. */
export const OFFERED_MECHANISMS = new StateKey<readonly string[]>('filterMechanisms.offered');

export function filterMechanismsClient(): NetworkServiceElement {
  return {
    name: FILTER_MECHANISMS,
    requires: ['state'],
    async request(req, ctx, next) {
      const url = ctx.state.get(CLIENT_URL);
      const cls = isLocalUrl(url) ? CLS_LOCAL : CLS_REMOTE;
      const all = req.mechanismPreferences;
      req.mechanismPreferences = all.filter((m) => m.cls === cls);
      if (req.mechanismPreferences.length === 0) {
        throw new InvalidArgumentError('mechanism_preferences', all.map((m) => `${m.cls}/${m.type}`), `no ${cls} mechanism to offer to ${url ?? 'the next hop'} (payload ${req.connection?.payload || 'unset'})`);
      }
      ctx.state.set(OFFERED_MECHANISMS, req.mechanismPreferences.map((m) => m.type));
      return next.request(req, ctx);
    },
    close: (conn, ctx, next) => next.close(conn, ctx),
  };
}
