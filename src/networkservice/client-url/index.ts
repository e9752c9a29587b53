/**
 * client-url — the URL `connect` dials for this Request: the next hop. It is written by exactly the
 * elements that choose the next hop (this static element on a client, `discover-forwarder` in nsmgr,
 * `round-robin` in the forwarder and nsmgr); each of them declares `provides: [CLIENT_URL_CAPABILITY]`,
 * and `connect` reads it. Mirrors upstream's `clienturl` element and `clienturlctx` package.
 */
import { passThrough, type NetworkServiceElement } from '../../core/chain.js';
import { StateKey } from '../../core/state.js';

/** The next hop's URL for this Request. */
export const CLIENT_URL = new StateKey<string>('client-url');

/** What an element that sets CLIENT_URL provides. */
export const CLIENT_URL_CAPABILITY = 'client-url';

/** Sets a fixed next hop (a client's nsmgr) on Request and on Close. */
export function clientUrl(url: string): NetworkServiceElement {
  return passThrough('client-url', {
    provides: [CLIENT_URL_CAPABILITY],
    request: (req, ctx, next) => (ctx.state.set(CLIENT_URL, url), next.request(req, ctx)),
    close: (conn, ctx, next) => (ctx.state.set(CLIENT_URL, url), next.close(conn, ctx)),
  });
}
