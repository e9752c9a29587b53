/**
 * `injectError`: a test element that fails chosen Request/Close calls (upstream
 * `sdk:pkg/networkservice/utils/inject/injecterror`). Calls are numbered from 0 per method, counting every
 * call that reaches the element. Select failing calls by an explicit list of call numbers or a predicate;
 * unselected calls pass through.
 */
import type { Connection } from '../api/gen/connection.js';
import type { NetworkServiceRequest } from '../api/gen/networkservice.js';
import type { NetworkServiceElement } from '../core/chain.js';
import { UnavailableError } from '../core/errors.js';

export type CallSelector<T> = readonly number[] | ((callNumber: number, arg: T) => boolean);

export interface InjectErrorOptions {
  /** Request calls to fail (0-based call numbers, or a predicate). Default: none. */
  readonly requests?: CallSelector<NetworkServiceRequest>;
  /** Close calls to fail (0-based call numbers, or a predicate). Default: none. */
  readonly closes?: CallSelector<Connection>;
  /** Builds the error thrown. Default: UnavailableError. */
  readonly error?: (method: 'request' | 'close', callNumber: number) => Error;
}

/** Fails every call: `injectError({ requests: ALWAYS })`. */
export const ALWAYS = (): boolean => true;

function selected<T>(sel: CallSelector<T> | undefined, n: number, arg: T): boolean {
  if (!sel) return false;
  return typeof sel === 'function' ? sel(n, arg) : sel.includes(n);
}

export function injectError(opts: InjectErrorOptions, name = 'inject-error'): NetworkServiceElement {
  const makeError = opts.error ?? ((m, n) => new UnavailableError(`injected error on ${m} #${n}`));
  let requests = 0;
  let closes = 0;
  return {
    name,
    async request(req, ctx, next) {
      const n = requests++;
      if (selected(opts.requests, n, req)) throw makeError('request', n);
      return next.request(req, ctx);
    },
    async close(conn, ctx, next) {
      const n = closes++;
      if (selected(opts.closes, n, conn)) throw makeError('close', n);
      return next.close(conn, ctx);
    },
  };
}
