/**
 * `begin` server (upstream `sdk:pkg/networkservice/common/begin/server.go`). Sits right after
 * `update-path` in every server chain.
 *
 * - Serializes Request, Close and internal events per connection id (a Close waits for an in-flight
 *   Request of the same id); a queued call whose signal aborted before its turn fails with it.
 * - One caller connection, one connection here: a call from the previous hop whose id update-path just
 *   made up (this hop's segment was missing or unknown) is for the connection this hop already has, or is
 *   setting up, for the same caller's connection — the same previous segment (name and id) from the same
 *   netns (the unix socket's peer, when there is one: a client in another pod naming that segment is
 *   another caller) — if any: it gets that id (in `conn.id` and in this hop's segment). So concurrent first Requests of one connection are serialized before anything
 *   below allocates (IPAM, veth pairs) and all but the first are re-Requests; a Close that names only the
 *   caller's segment closes it. The binding lives while the connection has an entry or a call in progress.
 *   (Upstream's updatepath makes a new id per such call; its begin serializes by that id only.)
 * - Owns the per-connection `StateStore` (`ctx.state` below begin) and `ctx.events` (EventFactory); both
 *   live from the first successful Request to Close. A failed first Request drops them; a failed
 *   re-Request keeps the established state.
 * - Stores the last request with the returned connection; sets `state = UP` on what it returns.
 * - A Request with `state = RESELECT_REQUESTED` for an established id first Closes the old connection
 *   downstream (stored copy, errors logged), drops its state, then proceeds as a new connection.
 * - Close of an unknown id does nothing; otherwise Close runs downstream with the stored connection, then
 *   drops the state and aborts `events.lifetime` (also when the downstream Close failed).
 * - Events (`events.request({reselect})`, `events.close()`) re-enter the chain below begin, serialized,
 *   with the stored request, state, metadata and a fresh signal bounded by the time the original call had
 *   left (or `eventTimeout`). Never await an event from inside a Request/Close of the same connection:
 *   it queues behind it.
 * - Inside a context that already has `events` (an event, or `connect`'s client chain) it passes through.
 * Background work: none of its own.
 */
import { createBegin, resolveBeginOptions, type BeginDeps, type BeginElement, type BeginOptions } from './core.js';

export function beginServer(deps: BeginDeps = {}, options: BeginOptions = {}): BeginElement {
  return createBegin('server', resolveBeginOptions(options), deps);
}
