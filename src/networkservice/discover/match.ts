/**
 * NetworkService `matches` evaluation and registry-read helpers shared by `discover` and
 * `discover-forwarder`. Mirrors `sdk/pkg/tools/matchutils` (IsSubset with label templates, MatchEndpoint).
 *
 * Selector values may be Go-template references to the request labels (`{{.nodeName}}`,
 * `{{ .podName }}-x`); a reference to a missing label renders as `<no value>` like Go's text/template on a
 * map, so it only matches a literal `<no value>`. Values with other template syntax are compared verbatim
 * (upstream falls back to the raw string when the template does not parse or execute).
 */
import type {
  NetworkService,
  NetworkServiceEndpoint,
  NetworkServiceEndpointQuery,
  NetworkServiceQuery,
} from '../../api/gen/registry.js';
import type { NseHandler, NsHandler } from '../../core/chain.js';
import type { CallContext } from '../../core/context.js';

const TEMPLATE_ACTION = /\{\{(.*?)\}\}/g;
const FIELD_REF = /^\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*$/;

/** Renders `{{.label}}` references from `values`; returns `str` unchanged for unsupported template syntax. */
export function processLabelTemplate(str: string, values: Readonly<Record<string, string>>): string {
  if (!str.includes('{{')) return str;
  let unsupported = false;
  const out = str.replace(TEMPLATE_ACTION, (_m, body: string) => {
    const ref = FIELD_REF.exec(body);
    if (!ref) {
      unsupported = true;
      return '';
    }
    return Object.prototype.hasOwnProperty.call(values, ref[1]) ? values[ref[1]] : '<no value>';
  });
  return unsupported ? str : out;
}

/** Whether every `b[k]` (possibly a template over `values`) equals `a[k]`. Missing keys read as ''. */
export function isSubset(
  a: Readonly<Record<string, string>> | undefined,
  b: Readonly<Record<string, string>> | undefined,
  values: Readonly<Record<string, string>>,
): boolean {
  const aa = a ?? {};
  const bb = b ?? {};
  if (Object.keys(aa).length < Object.keys(bb).length) return false;
  for (const [k, v] of Object.entries(bb)) {
    const have = aa[k] ?? '';
    if (have !== v && have !== processLabelTemplate(v, values)) return false;
  }
  return true;
}

/**
 * The NSEs selected by the service's `matches` for a request with `labels`: the first match whose
 * `source_selector` ⊆ labels; its candidates are the NSEs whose labels for this service ⊇ a route's
 * `destination_selector`; an empty result with `fallthrough` continues with the next match. No matches →
 * all NSEs; no applicable match → none.
 */
export function matchEndpoints(
  labels: Readonly<Record<string, string>>,
  ns: NetworkService,
  nses: readonly NetworkServiceEndpoint[],
): NetworkServiceEndpoint[] {
  if (ns.matches.length === 0) return [...nses];
  for (const match of ns.matches) {
    if (!isSubset(labels, match.sourceSelector, labels)) continue;
    const candidates: NetworkServiceEndpoint[] = [];
    for (const route of match.routes) {
      for (const nse of nses) {
        const nseLabels = nse.networkServiceLabels[ns.name]?.labels;
        if (isSubset(nseLabels, route.destinationSelector, labels) && !candidates.includes(nse)) candidates.push(nse);
      }
    }
    if (match.fallthrough && candidates.length === 0) continue;
    if (match.metadata && match.routes.length === 0 && candidates.length === 0) return [...nses];
    return candidates;
  }
  return [];
}

export function isExpired(nse: NetworkServiceEndpoint, now: number): boolean {
  return nse.expirationTime !== undefined && nse.expirationTime.getTime() <= now;
}

export async function findNetworkServices(reg: NsHandler, query: Partial<NetworkService>, ctx: CallContext): Promise<NetworkService[]> {
  const q: NetworkServiceQuery = {
    networkService: { name: '', payload: '', matches: [], pathIds: [], ...query },
    watch: false,
  };
  const out: NetworkService[] = [];
  for await (const r of reg.find(q, ctx)) if (!r.deleted && r.networkService) out.push(r.networkService);
  return out;
}

export async function findEndpoints(reg: NseHandler, query: Partial<NetworkServiceEndpoint>, ctx: CallContext): Promise<NetworkServiceEndpoint[]> {
  const q: NetworkServiceEndpointQuery = {
    networkServiceEndpoint: {
      name: '',
      networkServiceNames: [],
      networkServiceLabels: {},
      url: '',
      expirationTime: undefined,
      initialRegistrationTime: undefined,
      pathIds: [],
      ...query,
    },
    watch: false,
  };
  const out: NetworkServiceEndpoint[] = [];
  for await (const r of reg.find(q, ctx)) if (!r.deleted && r.networkServiceEndpoint) out.push(r.networkServiceEndpoint);
  return out;
}
