/**
 * Query matching for registry Find, with the semantics of upstream `sdk:pkg/tools/matchutils`: an empty
 * template field matches everything; names and URLs match by substring; every requested service name
 * must be present; requested labels must be a subset of the endpoint's labels for that service;
 * payload must be equal. NS `matches` are compared only when the template has some.
 */
import { Match, type NetworkService, type NetworkServiceEndpoint } from '../../api/gen/registry.js';

export function matchNetworkService(template: NetworkService | undefined, ns: NetworkService): boolean {
  if (!template) return true;
  if (template.name !== '' && !ns.name.includes(template.name)) return false;
  if (template.payload !== '' && template.payload !== ns.payload) return false;
  if (template.matches.length > 0) {
    if (template.matches.length !== ns.matches.length) return false;
    for (let i = 0; i < template.matches.length; i++) {
      if (!bytesEqual(Match.encode(template.matches[i]).finish(), Match.encode(ns.matches[i]).finish())) return false;
    }
  }
  return true;
}

export function matchNetworkServiceEndpoint(template: NetworkServiceEndpoint | undefined, nse: NetworkServiceEndpoint): boolean {
  if (!template) return true;
  if (template.name !== '' && !nse.name.includes(template.name)) return false;
  if (template.url !== '' && !nse.url.includes(template.url)) return false;
  for (const svc of template.networkServiceNames) if (!nse.networkServiceNames.includes(svc)) return false;
  for (const [svc, want] of Object.entries(template.networkServiceLabels)) {
    const have = nse.networkServiceLabels[svc];
    if (!have) return false;
    for (const [k, v] of Object.entries(want.labels)) if (have.labels[k] !== v) return false;
  }
  return true;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
