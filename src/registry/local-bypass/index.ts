/**
 * `local-bypass` — nsmgr registry server element that lets local peers reach local NSEs directly.
 *
 * - Register: remembers NSE name → the URL it registered with (its unix socket; undone if the
 *   registration fails) and forwards the
 *   registration with `url` = the nsmgr's public URL (`nsmgrUrl`; without one the URL is left as is), so
 *   other nodes reach the NSE through this nsmgr. The answer carries the NSE's own URL again.
 * - Find: entries of NSEs registered on this nsmgr get their local URL back; entries whose URL is this
 *   nsmgr's URL but which it does not know (stale, e.g. after an nsmgr restart) are dropped. Deletion
 *   events pass (with the local URL when known), so watchers still see NSEs go away.
 * - Unregister: forwards with the nsmgr URL and forgets the NSE.
 *
 * Sits near the end of nsmgr's NSE registry chain, before `connect`. No background work. Mirrors upstream
 * `sdk/pkg/registry/common/localbypass`.
 */
import type { NetworkServiceEndpointResponse } from '../../api/gen/registry.js';
import { NetworkServiceEndpoint as NseFns } from '../../api/gen/registry.js';
import type { NseElement } from '../../core/chain.js';
import { parseUrl } from '../../core/transport.js';

export interface LocalBypassOptions {
  /** The nsmgr's public URL (first `tcp://` of `NSM_LISTEN_ON`, resolved). */
  readonly nsmgrUrl?: string;
}

/** Compares URLs as NSM does: a bare `host:port` equals `tcp://host:port`. */
function sameUrl(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return parseUrl(a).url === parseUrl(b).url;
  } catch {
    return false;
  }
}

export function localBypassServer(options: LocalBypassOptions = {}): NseElement {
  const nsmgrUrl = options.nsmgrUrl && options.nsmgrUrl.trim() !== '' ? options.nsmgrUrl.trim() : undefined;
  if (nsmgrUrl !== undefined) parseUrl(nsmgrUrl, 'nsmgrUrl');
  const local = new Map<string, string>();

  const rewrite = (r: NetworkServiceEndpointResponse): NetworkServiceEndpointResponse | undefined => {
    const nse = r.networkServiceEndpoint;
    if (!nse) return r;
    const url = local.get(nse.name);
    if (url !== undefined) return { ...r, networkServiceEndpoint: { ...nse, url } };
    if (!r.deleted && nsmgrUrl !== undefined && sameUrl(nse.url, nsmgrUrl)) return undefined;
    return r;
  };

  return {
    name: 'local-bypass',
    async register(nse, ctx, next) {
      const localUrl = nse.url;
      const out = NseFns.fromPartial(nse);
      if (nsmgrUrl !== undefined) out.url = nsmgrUrl;
      // Known before forwarding, so a watch event racing the answer is already rewritten.
      const previous = local.get(nse.name);
      local.set(nse.name, localUrl);
      try {
        const resp = await next.register(out, ctx);
        return { ...resp, url: localUrl };
      } catch (err) {
        if (previous === undefined) local.delete(nse.name);
        else local.set(nse.name, previous);
        throw err;
      }
    },
    async *find(query, ctx, next) {
      for await (const r of next.find(query, ctx)) {
        const out = rewrite(r);
        if (out) yield out;
      }
    },
    async unregister(nse, ctx, next) {
      const out = NseFns.fromPartial(nse);
      if (nsmgrUrl !== undefined) out.url = nsmgrUrl;
      try {
        await next.unregister(out, ctx);
      } finally {
        local.delete(nse.name);
      }
    },
  };
}
