/**
 * The few error classes of nsm-ts. Each has a stable `name` (tests assert on it) and an optional `cause`.
 * They are mapped to gRPC status codes only at the server edge (`toServerError`), and back at the client
 * edge (`fromClientError`).
 */
import { ClientError, ServerError, Status } from 'nice-grpc';
import { NsmError, InvalidArgumentError, excerpt } from '../api/errors.js';

export { NsmError, InvalidArgumentError, excerpt } from '../api/errors.js';

/** A configuration value (env var or flag) is wrong. Exit code 2 at the process edge. */
export class ConfigError extends NsmError {
  override name = 'ConfigError';
  constructor(
    readonly variable: string,
    readonly value: unknown,
    reason: string,
  ) {
    super(`${variable}=${excerpt(value ?? '')}: ${reason}`);
  }
}

export class NotFoundError extends NsmError {
  override name = 'NotFoundError';
}

/** A peer (next hop, registry, endpoint) could not be reached or failed. */
export class UnavailableError extends NsmError {
  override name = 'UnavailableError';
}

/**
 * No answer in time: a deadline passed before the work could start (e.g. while a call waited for its
 * turn), or a peer never answered (a dial that stayed CONNECTING, a call that hung). An UnavailableError
 * whose cause is silence rather than refusal: heal keeps repairing in place through it (machine.ts).
 * Crosses hops as DEADLINE_EXCEEDED.
 */
export class DeadlineExceededError extends UnavailableError {
  override name = 'DeadlineExceededError';
}

/** A step of programming the kernel failed; `step` names it. */
export class DataplaneError extends NsmError {
  override name = 'DataplaneError';
  constructor(
    readonly step: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${step}: ${message}`, options);
  }
}

/** The chain was assembled in an order that breaks an element's `requires`. Thrown at build time. */
export class ChainOrderError extends NsmError {
  override name = 'ChainOrderError';
}

/** The operation was cancelled (signal aborted or deadline passed). */
export class CancelledError extends NsmError {
  override name = 'CancelledError';
}

export class PermissionDeniedError extends NsmError {
  override name = 'PermissionDeniedError';
}


/** What a call would create exists already and is not the caller's (e.g. an interface name another connection owns). */
export class AlreadyExistsError extends NsmError {
  override name = 'AlreadyExistsError';
}

/** A bounded resource (a queue, a pool, a limit) is full. */
export class ResourceExhaustedError extends NsmError {
  override name = 'ResourceExhaustedError';
}

const STATUS_BY_NAME: Record<string, Status> = {
  InvalidArgumentError: Status.INVALID_ARGUMENT,
  ConfigError: Status.INVALID_ARGUMENT,
  NotFoundError: Status.NOT_FOUND,
  UnavailableError: Status.UNAVAILABLE,
  DataplaneError: Status.INTERNAL,
  CancelledError: Status.CANCELLED,
  PermissionDeniedError: Status.PERMISSION_DENIED,
  AlreadyExistsError: Status.ALREADY_EXISTS,
  ResourceExhaustedError: Status.RESOURCE_EXHAUSTED,
  DeadlineExceededError: Status.DEADLINE_EXCEEDED,
};

/** The code of the nearest of our classes an error's class extends (e.g. a pool's exhaustion error). */
function inheritedStatus(err: Error): Status | undefined {
  for (let c = Object.getPrototypeOf(err)?.constructor; c && c !== Error && c !== Object; c = Object.getPrototypeOf(c)) {
    const code = STATUS_BY_NAME[(c as { name: string }).name];
    if (code !== undefined) return code;
  }
  return undefined;
}

/**
 * Maps any error to a gRPC ServerError (server edge only). An error of ours maps by its class; an error
 * that `fromClientError` made from a peer's status without a class of its own (INTERNAL, ABORTED,
 * FAILED_PRECONDITION, …) keeps the peer's code, so a hop passes it on instead of answering UNKNOWN.
 */
export function toServerError(err: unknown): ServerError {
  if (err instanceof ServerError) return err;
  if (err instanceof ClientError) return new ServerError(err.code, err.details);
  if (err instanceof Error) {
    const code = STATUS_BY_NAME[err.name] ?? inheritedStatus(err) ?? (err.name === 'AbortError' ? Status.CANCELLED : err.cause instanceof ClientError ? err.cause.code : Status.UNKNOWN);
    return new ServerError(code, err.message);
  }
  return new ServerError(Status.UNKNOWN, String(err));
}

/** Maps a gRPC client error back to one of our classes (client edge only). */
export function fromClientError(err: unknown, what: string): Error {
  if (!(err instanceof ClientError)) return err instanceof Error ? err : new NsmError(String(err));
  const msg = `${what}: ${err.details}`;
  switch (err.code) {
    case Status.INVALID_ARGUMENT:
      return new InvalidArgumentError(what, err.details, 'rejected by peer', { cause: err });
    case Status.NOT_FOUND:
      return new NotFoundError(msg, { cause: err });
    case Status.CANCELLED:
      return new CancelledError(msg, { cause: err });
    case Status.PERMISSION_DENIED:
      return new PermissionDeniedError(msg, { cause: err });
    case Status.RESOURCE_EXHAUSTED:
      return new ResourceExhaustedError(msg, { cause: err });
    case Status.ALREADY_EXISTS:
      return new AlreadyExistsError(msg, { cause: err });
    case Status.UNAVAILABLE:
      return new UnavailableError(msg, { cause: err });
    case Status.DEADLINE_EXCEEDED:
      return new DeadlineExceededError(msg, { cause: err });
    default:
      return new NsmError(msg, { cause: err });
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
