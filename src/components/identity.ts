/**
 * How a component gets its identity (security/identity.ts) at start: the one the caller gives
 * (`deps.identity`, e.g. the in-process sandbox with a test SVID source; the caller keeps and stops it), or
 * one started from the component's config (`SPIFFE_ENDPOINT_SOCKET`, `NSM_INSECURE`), which `release()`
 * stops. `deps.signal` ends the wait for the first SVID (SIGTERM during start-up).
 */
import type { Running } from '../core/lifecycle.js';
import type { Logger } from '../core/log.js';
import { startIdentity, type Identity } from '../security/identity.js';
import { DEFAULT_WORKLOAD_API_SOCKET, type IdentityConfig } from './config.js';

export interface IdentityDeps {
  readonly log: Logger;
  /** An identity to use instead of one from the config; the caller stops it. */
  readonly identity?: Identity;
  /** Aborts start-up while it waits for the first SVID. */
  readonly signal?: AbortSignal;
}

export async function componentIdentity(
  config: IdentityConfig & { readonly maxTokenLifetime?: number },
  deps: IdentityDeps,
  subject: string,
): Promise<{ identity: Identity; release(): void }> {
  if (deps.identity) return { identity: deps.identity, release: () => undefined };
  if (!config.insecure && config.spiffeEndpointSocket === DEFAULT_WORKLOAD_API_SOCKET) {
    deps.log.info({ endpoint: DEFAULT_WORKLOAD_API_SOCKET }, "SPIFFE_ENDPOINT_SOCKET: the Workload API socket of the mesh on this node (the default when unset)");
  }
  const identity = await startIdentity({
    insecure: config.insecure,
    endpoint: config.spiffeEndpointSocket,
    log: deps.log,
    maxTokenLifetime: config.maxTokenLifetime,
    signal: deps.signal,
    insecureSubject: `nsm-ts/${subject}`,
  });
  return { identity, release: () => identity.stop() };
}

/**
 * Starts a component with its identity: `start(identity)` runs once the identity is there; when it fails
 * the identity is released, and the component's `stop()` releases it after everything else stopped.
 */
export async function withIdentity<R extends Running>(
  config: IdentityConfig & { readonly maxTokenLifetime?: number },
  deps: IdentityDeps,
  subject: string,
  start: (identity: Identity) => Promise<R>,
): Promise<R> {
  const { identity, release } = await componentIdentity(config, deps, subject);
  let running: R;
  try {
    running = await start(identity);
  } catch (err) {
    release();
    throw err;
  }
  return {
    ...running,
    async stop() {
      try {
        await running.stop();
      } finally {
        release();
      }
    },
  };
}
