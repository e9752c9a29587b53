/**
 * `begin` server (upstream `sdk:pkg/networkservice/common/begin/server.go`). Sits right after
 * `update-path` in every server chain.
 *
 * - Serializes Request, Close and internal events per connection id (a Close waits for an in-flight
 *   Request of the same id); a queued call whose signal aborted before its turn fails with it.
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
