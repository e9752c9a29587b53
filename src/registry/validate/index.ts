/**
 * Rejects malformed registrations before anything else sees them: an NSE needs a name and a
 * `unix://` or `tcp://` URL; a NetworkService needs a name; Unregister needs a name. Errors are
 * `InvalidArgumentError` naming the field (INVALID_ARGUMENT at the gRPC edge); nothing below runs, so
 * the store is unchanged. Find passes through. First element of the registry chains; no background
 * work. Upstream has no single package for this (checks are spread over `registry/core/*` and the
 * memory/k8s stores); nsm-ts validates at the boundary.
 */
import type { NsElement, NseElement } from '../../core/chain.js';
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
      requireName(nse);
      checkNseUrl(nse);
      return next.register(nse, ctx);
    },
    find: (q, ctx, next) => next.find(q, ctx),
    unregister: async (nse, ctx, next) => {
      requireName(nse);
      return next.unregister(nse, ctx);
    },
  };
}

export function validateNsServer(): NsElement {
  return {
    name: 'validate',
    register: async (ns, ctx, next) => {
      requireName(ns);
      return next.register(ns, ctx);
    },
    find: (q, ctx, next) => next.find(q, ctx),
    unregister: async (ns, ctx, next) => {
      requireName(ns);
      return next.unregister(ns, ctx);
    },
  };
}
