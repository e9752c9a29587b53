/**
 * `client-info` — nsmgr registry server element: adds the nsmgr's own labels (`nodeName`, `podName`,
 * `clusterName`, passed in by the component; never read from the environment here) to every service label
 * set of an NSE registration, and creates a label set for each of the NSE's services that has none, so
 * forwarders and endpoints can be selected by node. Labels the NSE already set are never overwritten.
 * Find and Unregister pass through. Mirrors upstream `sdk/pkg/registry/common/clientinfo`.
 */
import type { NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { NetworkServiceEndpoint as NseFns } from '../../api/gen/registry.js';
import type { NseElement } from '../../core/chain.js';

export interface ClientInfoDeps {
  /** e.g. `{ nodeName, podName, clusterName }`; empty values are skipped. */
  readonly labels: Readonly<Record<string, string>>;
}

/** Returns a copy of `nse` with `labels` added to each service label set (existing keys win). */
export function addClientInfo(nse: NetworkServiceEndpoint, labels: Readonly<Record<string, string>>): NetworkServiceEndpoint {
  const out = NseFns.fromPartial(nse);
  const add = Object.entries(labels).filter(([, v]) => v !== '');
  if (add.length === 0) return out;
  for (const svc of out.networkServiceNames) out.networkServiceLabels[svc] ??= { labels: {} };
  for (const set of Object.values(out.networkServiceLabels)) {
    for (const [k, v] of add) if (!(k in set.labels)) set.labels[k] = v;
  }
  return out;
}

export function clientInfoServer(deps: ClientInfoDeps): NseElement {
  const labels = Object.freeze({ ...deps.labels });
  return {
    name: 'client-info',
    register: (nse, ctx, next) => next.register(addClientInfo(nse, labels), ctx),
    find: (q, ctx, next) => next.find(q, ctx),
    unregister: (nse, ctx, next) => next.unregister(nse, ctx),
  };
}
