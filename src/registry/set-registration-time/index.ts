/**
 * Sets `initial_registration_time` of an NSE to now on its first Register and keeps it afterwards: a
 * re-Register (refresh) that carries the time it got back keeps it, and one that does not gets the
 * time remembered for that name. Forgotten on Unregister. NSE registry chain, after `expire` (whose
 * expiry Unregisters through the rest of the chain, so an expired name is forgotten too) and before
 * `store`; no background work. Mirrors upstream `sdk:pkg/registry/common/setregistrationtime`.
 */
import { registryPassThrough, type NseElement } from '../../core/chain.js';
import type { Clock } from '../../core/clock.js';
import { realClock } from '../../core/clock.js';

export function setRegistrationTimeNseServer(deps: { clock?: Clock } = {}): NseElement {
  const clock = deps.clock ?? realClock;
  const first = new Map<string, number>();
  return registryPassThrough('set-registration-time', {
    async register(nse, ctx, next) {
      const at = nse.initialRegistrationTime?.getTime() ?? first.get(nse.name) ?? clock.now();
      const resp = await next.register({ ...nse, initialRegistrationTime: new Date(at) }, ctx);
      first.set(nse.name, at);
      return resp;
    },
    async unregister(nse, ctx, next) {
      first.delete(nse.name);
      return next.unregister(nse, ctx);
    },
  });
}
