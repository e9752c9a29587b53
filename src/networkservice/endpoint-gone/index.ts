/**
 * endpoint-gone (forwarder server) — tells the client that its endpoint is gone, as opposed to a
 * control-plane hop being briefly away. When the next hop (the NSE chosen by discover/round-robin)
 * cannot be reached, the UnavailableError becomes a NotFoundError naming the endpoint; the client's
 * heal then reselects instead of repairing in place forever. Other errors pass unchanged.
 *
 * A cancelled call keeps its error (the endpoint is not known to be gone); Close passes unchanged.
 *
 * Placement: forwarder chain, after round-robin, just before connect. No state, no background work.
 * nsm-ts only (no upstream twin).
 */
import type { NetworkServiceElement } from '../../core/chain.js';
import { NotFoundError, UnavailableError } from '../../core/errors.js';

export function endpointGoneServer(): NetworkServiceElement {
  return {
    name: 'endpoint-gone',
    async request(req, ctx, next) {
      try {
        return await next.request(req, ctx);
      } catch (err) {
        if (err instanceof UnavailableError && !ctx.signal.aborted) {
          const name = req.connection?.networkServiceEndpointName || 'the endpoint';
          throw new NotFoundError(`endpoint ${name} is gone: ${err.message}`, { cause: err });
        }
        throw err;
      }
    },
    close: (conn, ctx, next) => next.close(conn, ctx),
  };
}
