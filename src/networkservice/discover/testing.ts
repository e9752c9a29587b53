/**
 * Tiny registry handlers over arrays, for the unit tests of discover, round-robin and discover-forwarder
 * (independent of the real registry elements). `find` matches by name equality and
 * `network_service_names` containment (the URL is ignored); it records every query and can be told to fail.
 */
import type {
  NetworkService,
  NetworkServiceEndpoint,
  NetworkServiceEndpointQuery,
  NetworkServiceQuery,
} from '../../api/gen/registry.js';
import { NetworkService as NsFns, NetworkServiceEndpoint as NseFns } from '../../api/gen/registry.js';
import type { NseHandler, NsHandler } from '../../core/chain.js';
import { UnavailableError } from '../../core/errors.js';

export interface ArrayRegistries {
  nsRegistry: NsHandler;
  nseRegistry: NseHandler;
  services: NetworkService[];
  endpoints: NetworkServiceEndpoint[];
  nsQueries: NetworkServiceQuery[];
  nseQueries: NetworkServiceEndpointQuery[];
  /** When true every find throws UnavailableError. */
  down: boolean;
}

export function ns(p: Parameters<typeof NsFns.fromPartial>[0]): NetworkService {
  return NsFns.fromPartial(p);
}

export function nse(name: string, services: string[], url: string, labels: Record<string, Record<string, string>> = {}, expires?: Date): NetworkServiceEndpoint {
  return NseFns.fromPartial({
    name,
    networkServiceNames: services,
    url,
    networkServiceLabels: Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, { labels: v }])),
    expirationTime: expires,
  });
}

export function arrayRegistries(services: NetworkService[] = [], endpoints: NetworkServiceEndpoint[] = []): ArrayRegistries {
  const r: ArrayRegistries = {
    services,
    endpoints,
    nsQueries: [],
    nseQueries: [],
    down: false,
    nsRegistry: {
      register: async (x) => x,
      unregister: async () => {},
      find: async function* (q) {
        r.nsQueries.push(q);
        if (r.down) throw new UnavailableError('registry down');
        const want = q.networkService;
        for (const s of r.services) if (!want?.name || want.name === s.name) yield { networkService: s, deleted: false };
      },
    },
    nseRegistry: {
      register: async (x) => x,
      unregister: async () => {},
      find: async function* (q) {
        r.nseQueries.push(q);
        if (r.down) throw new UnavailableError('registry down');
        const want = q.networkServiceEndpoint;
        for (const e of r.endpoints) {
          if (want?.name && want.name !== e.name) continue;
          if (want?.networkServiceNames.some((n) => !e.networkServiceNames.includes(n))) continue;
          yield { networkServiceEndpoint: e, deleted: false };
        }
      },
    },
  };
  return r;
}
