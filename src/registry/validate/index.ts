/**
 * Rejects malformed registrations before anything else sees them: an NSE needs a name and a
 * `unix://` or `tcp://` URL; a NetworkService needs a name; Unregister needs a name; every value of a
 * registration, an unregistration or a Find query stays within the size limits of `api/limits.ts`.
 * Errors are `InvalidArgumentError` naming the field and an excerpt of the value (INVALID_ARGUMENT at the
 * gRPC edge); nothing below runs, so the store is unchanged. A well-formed Find passes through. First
 * element of the registry chains (registry and nsmgr); no background work. Upstream has no single package for this (checks are spread over `registry/core/*` and the
 * memory/k8s stores); nsm-ts validates at the boundary.
 */
import type { NsElement, NseElement } from '../../core/chain.js';
import { checkNs, checkNse } from '../../api/limits.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { parseUrl } from '../../core/transport.js';
import type { NetworkServiceEndpoint } from '../../api/gen/registry.js';

function requireName(item: { name: string } | undefined): void {
  if (!item || item.name.trim() === '') throw new InvalidArgumentError('name', item?.name ?? '', 'must not be empty');
}

function checkNseUrl(nse: NetworkServiceEndpoint): void {
  const url = nse.url.trim();
  if (!url.startsWith('unix://') && !url.startsWith('tcp://')) {
    throw new InvalidArgumentError('url', nse.url, 'must be unix:///path or tcp://host:port');
  }
  parseUrl(url, 'url');
}

export function validateNseServer(): NseElement {
  return {
    name: 'validate',
    register: async (nse, ctx, next) => {
      checkNse(nse);
      requireName(nse);
      checkNseUrl(nse);
      return next.register(nse, ctx);
    },
    find: async function* (q, ctx, next) {
      if (q.networkServiceEndpoint) checkNse(q.networkServiceEndpoint, 'network_service_endpoint.');
      yield* next.find(q, ctx);
    },
    unregister: async (nse, ctx, next) => {
      checkNse(nse);
      requireName(nse);
      return next.unregister(nse, ctx);
    },
  };
}

export function validateNsServer(): NsElement {
  return {
    name: 'validate',
    register: async (ns, ctx, next) => {
      checkNs(ns);
      requireName(ns);
      return next.register(ns, ctx);
    },
    find: async function* (q, ctx, next) {
      if (q.networkService) checkNs(q.networkService, 'network_service.');
      yield* next.find(q, ctx);
    },
    unregister: async (ns, ctx, next) => {
      checkNs(ns);
      requireName(ns);
      return next.unregister(ns, ctx);
    },
  };
}
