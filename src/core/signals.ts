/**
 * Signal helpers. `linkSignals` combines signals and always releases its listeners on `dispose()`
 * (Node 20's `AbortSignal.any` keeps listeners on long-lived parents). `sleep` is abortable.
 */
import { longTimeout } from './clock.js';
import { CancelledError, DeadlineExceededError } from './errors.js';

export interface LinkedSignal {
  readonly signal: AbortSignal;
  dispose(): void;
}

/**
 * Reason for routine aborts (a stream or loop that simply ended). Passing a reason avoids building a
 * DOMException with a stack trace on every abort, which showed up in the control-plane profile.
 */
export const ENDED: Error = new CancelledError('ended');

/** Combines signals (and an optional timeout in ms) into one; call `dispose()` when done. */
export function linkSignals(signals: ReadonlyArray<AbortSignal | undefined>, timeoutMs?: number): LinkedSignal {
  const controller = new AbortController();
  const cleanups: Array<() => void> = [];
  const abort = (reason: unknown) => {
    if (!controller.signal.aborted) controller.abort(reason);
    dispose();
  };
  const dispose = () => {
    for (const c of cleanups.splice(0)) c();
  };
  for (const s of signals) {
    if (!s) continue;
    if (s.aborted) {
      abort(s.reason);
      return { signal: controller.signal, dispose };
    }
    const onAbort = () => abort(s.reason);
    s.addEventListener('abort', onAbort, { once: true });
    cleanups.push(() => s.removeEventListener('abort', onAbort));
  }
  if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
    const t = longTimeout(() => abort(new DeadlineExceededError(`timed out after ${timeoutMs} ms`)), timeoutMs);
    cleanups.push(() => t.cancel());
  }
  return { signal: controller.signal, dispose };
}

/** Resolves after `ms`, or rejects with CancelledError when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(cancelled(signal));
    const t = longTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      t.cancel();
      reject(cancelled(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function cancelled(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  return new CancelledError(r === undefined ? 'cancelled' : String(r));
}

export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw cancelled(signal);
}

/**
 * `p`, or a rejection with the signal's reason as soon as `signal` aborts (`p` itself runs on: for work
 * that cannot be cancelled, such as a request already sent or a read in flight).
 */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(cancelled(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(cancelled(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
