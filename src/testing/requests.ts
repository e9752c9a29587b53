/**
 * Builders for test requests: the sdk's default test request
 * (`{connection: {id, networkService, context: {}, labels: {}}, mechanismPreferences: [LOCAL/KERNEL]}`).
 */
import { randomUUID } from 'node:crypto';
import { CLS_LOCAL, MECH_KERNEL } from '../api/constants.js';
import { Connection, type PathSegment } from '../api/gen/connection.js';
import type { NetworkServiceRequest } from '../api/gen/networkservice.js';

export interface TestRequestOptions {
  id?: string;
  networkService?: string;
  labels?: Record<string, string>;
  pathSegments?: Array<Partial<PathSegment>>;
  pathIndex?: number;
}

export function defaultRequest(opts: TestRequestOptions = {}): NetworkServiceRequest {
  return {
    connection: Connection.fromPartial({
      id: opts.id ?? randomUUID(),
      networkService: opts.networkService ?? 'ns-1',
      context: { extraContext: {} },
      labels: { ...(opts.labels ?? {}) },
      path: opts.pathSegments ? { index: opts.pathIndex ?? 0, pathSegments: opts.pathSegments } : undefined,
    }),
    mechanismPreferences: [{ cls: CLS_LOCAL, type: MECH_KERNEL, parameters: {} }],
  };
}
