/**
 * `begin` client (upstream `sdk:pkg/networkservice/common/begin/client.go`). Sits right after
 * `update-path` client at the top of a client chain (NSC).
 *
 * Same serialization, state, lifetime and Close rules as `beginServer`, plus:
 * - a re-Request is merged with the stored connection: the chain's current path, mechanism etc. are
 *   kept, the caller's `networkServiceEndpointName` / `context` are taken only if the caller changed them
 *   relative to the connection last returned (upstream `mergeConnection`);
 * - `events.request({ reselect: true })` Closes the stored connection down the chain (errors ignored),
 *   applies the reselect function (default `defaultReselect`: no mechanism, no endpoint name,
 *   `state = RESELECT_REQUESTED`; path, labels, ip context, preferences kept) to a copy of the stored
 *   request and Requests it; on success the stored state is `UP`.
 * Background work: none of its own.
 */
import { createBegin, resolveBeginOptions, type BeginDeps, type BeginElement, type BeginOptions } from './core.js';

export function beginClient(deps: BeginDeps = {}, options: BeginOptions = {}): BeginElement {
  return createBegin('client', resolveBeginOptions(options), deps);
}
