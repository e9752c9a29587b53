/**
 * `count`: a pass-through test element that counts Requests, Closes and the distinct connection ids seen
 * by each (upstream `sdk:pkg/networkservice/utils/count`). Counting happens on the way in, whatever the
 * rest of the chain returns. Usable in server and client chains.
 */
import type { NetworkServiceElement } from '../core/chain.js';

export interface CountElement extends NetworkServiceElement {
  readonly requests: number;
  readonly closes: number;
  /** Distinct connection ids seen by Request. */
  readonly uniqueRequests: number;
  /** Distinct connection ids seen by Close. */
  readonly uniqueCloses: number;
  /** Ids in order of Request calls (a copy). */
  readonly requestIds: readonly string[];
  reset(): void;
}

export function count(name = 'count'): CountElement {
  let requestIds: string[] = [];
  let closeIds: string[] = [];
  return {
    name,
    get requests() {
      return requestIds.length;
    },
    get closes() {
      return closeIds.length;
    },
    get uniqueRequests() {
      return new Set(requestIds).size;
    },
    get uniqueCloses() {
      return new Set(closeIds).size;
    },
    get requestIds() {
      return [...requestIds];
    },
    reset() {
      requestIds = [];
      closeIds = [];
    },
    request(req, ctx, next) {
      requestIds.push(req.connection?.id ?? '');
      return next.request(req, ctx);
    },
    close(conn, ctx, next) {
      closeIds.push(conn.id);
      return next.close(conn, ctx);
    },
  };
}
