/**
 * The registry's path (upstream sdk `pkg/registry/common/grpcmetadata`, `pkg/registry/common/updatepath`).
 * Registry messages have no path field, so a registry call carries its path in gRPC metadata `path` as Go's
 * `encoding/json` writes upstream's struct — `{"Index":1,"PathSegments":[{"token":"…"},{"token":"…"}]}`
 * (segments hold only a token: no name, id or expiry) — and the server sends it back, with the index
 * restored to the caller's, in a response header `path`. Upstream's registry clients run
 * `next_token_signed` on that header, so a server that upstream clients call must send it.
 *
 * Update rule at each registry server (`updateRegistryPath`): an empty path becomes [caller's token, own
 * token] at index 1; otherwise the segment at the incoming index gets the caller's per-RPC token
 * (`nsm-client-token`), the index moves on, and this hop's token is appended or replaces the one there
 * (a refresh). The endpoint's `path_ids` get the `sub` of those two tokens at the same positions
 * (`registryPathIds`); `registry_client_allowed` later compares the first of them with the caller.
 *
 * Decoding follows Go's decoder where it matters for interop (field names match case-insensitively,
 * unknown fields and `null` lists are accepted) and bounds what a peer may send: size, segment count, token
 * length, an index inside the path. Errors name the `path` metadata.
 */
import { MAX_PATH_SEGMENTS, MAX_TOKEN_LENGTH } from '../api/limits.js';
import { InvalidArgumentError } from '../core/errors.js';
import { tokenSubject } from './token.js';

export interface RegistryPathSegment {
  readonly token: string;
}

export interface RegistryPath {
  readonly index: number;
  readonly segments: readonly RegistryPathSegment[];
}

/** What an error names: the metadata key of the registry path. */
export const REGISTRY_PATH_FIELD = 'path (metadata)';
/** Default bound of the `path` metadata value: 32 KiB (upstream sends about 700 bytes per hop). */
export const DEFAULT_MAX_REGISTRY_PATH_BYTES = 32 * 1024;
/** The largest bound a caller may set. */
export const MAX_REGISTRY_PATH_BYTES = 1024 * 1024;
const MAX_UINT32 = 0xffff_ffff;

export interface RegistryPathLimits {
  /** Bytes of the metadata value. Default DEFAULT_MAX_REGISTRY_PATH_BYTES, at most MAX_REGISTRY_PATH_BYTES. */
  readonly maxBytes?: number;
  /** Segments. Default and at most MAX_PATH_SEGMENTS. */
  readonly maxSegments?: number;
}

function bad(value: unknown, reason: string): InvalidArgumentError {
  return new InvalidArgumentError(REGISTRY_PATH_FIELD, value, reason);
}

function resolveLimits(limits: RegistryPathLimits): { maxBytes: number; maxSegments: number } {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_REGISTRY_PATH_BYTES;
  const maxSegments = limits.maxSegments ?? MAX_PATH_SEGMENTS;
  if (!Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > MAX_REGISTRY_PATH_BYTES) throw new InvalidArgumentError('maxBytes', maxBytes, `must be an integer from 1 to ${MAX_REGISTRY_PATH_BYTES}`);
  if (!Number.isInteger(maxSegments) || maxSegments < 1 || maxSegments > MAX_PATH_SEGMENTS) throw new InvalidArgumentError('maxSegments', maxSegments, `must be an integer from 1 to ${MAX_PATH_SEGMENTS}`);
  return { maxBytes, maxSegments };
}

/** The value of the `path` metadata (request) and response header, as Go marshals upstream's struct. */
export function encodeRegistryPath(path: RegistryPath): string {
  return JSON.stringify({ Index: path.index, PathSegments: path.segments.map((s) => ({ token: s.token })) });
}

/** The value of a key matched as Go's decoder does (exact or case-insensitive; the last one wins). */
function field(obj: Record<string, unknown>, name: string): unknown {
  let value: unknown;
  for (const [k, v] of Object.entries(obj)) if (k.toLowerCase() === name) value = v;
  return value;
}

function decodeSegment(raw: unknown, i: number, value: string): RegistryPathSegment {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(value, `PathSegments[${i}] is not an object`);
  const token = field(raw as Record<string, unknown>, 'token') ?? '';
  if (typeof token !== 'string') throw bad(value, `PathSegments[${i}].token is not a string`);
  if (token.length > MAX_TOKEN_LENGTH) throw bad(value, `PathSegments[${i}].token is longer than ${MAX_TOKEN_LENGTH} characters (${token.length})`);
  return { token };
}

/**
 * Parses the `path` metadata value. Undefined for an absent value (the caller decides what a call without
 * a path means); an InvalidArgumentError naming `path (metadata)` for anything malformed or out of bounds.
 */
export function decodeRegistryPath(value: string | undefined, limits: RegistryPathLimits = {}): RegistryPath | undefined {
  if (value === undefined) return undefined;
  const { maxBytes, maxSegments } = resolveLimits(limits);
  const size = Buffer.byteLength(value);
  if (size > maxBytes) throw bad(value, `longer than ${maxBytes} bytes (${size})`);
  let obj: unknown;
  try {
    obj = JSON.parse(value);
  } catch (err) {
    throw new InvalidArgumentError(REGISTRY_PATH_FIELD, value, `not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw bad(value, 'not a JSON object like {"Index":0,"PathSegments":[{"token":"…"}]}');
  const index = field(obj as Record<string, unknown>, 'index') ?? 0;
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > MAX_UINT32) throw bad(value, `Index must be an unsigned 32-bit integer (got ${JSON.stringify(index)})`);
  const rawSegments = field(obj as Record<string, unknown>, 'pathsegments') ?? [];
  if (!Array.isArray(rawSegments)) throw bad(value, 'PathSegments is not a list');
  if (rawSegments.length > maxSegments) throw bad(value, `more than ${maxSegments} segments (${rawSegments.length})`);
  const segments = rawSegments.map((s, i) => decodeSegment(s, i, value));
  if (segments.length === 0 ? index !== 0 : index >= segments.length) throw bad(value, `Index ${index} is outside the path (${segments.length} segments)`);
  return { index, segments };
}

/**
 * One registry server's update of the path (upstream `updatepath.updatePath`): returns the new path (index
 * = this hop) and the caller's index, to restore in the response header. `peerToken` is the caller's
 * `nsm-client-token` ('' when it sent none), `ownToken` this hop's fresh token.
 */
export function updateRegistryPath(path: RegistryPath, peerToken: string, ownToken: string): { path: RegistryPath; callerIndex: number } {
  const segs = path.segments.map((s) => ({ token: s.token }));
  if (segs.length === 0) return { path: { index: 1, segments: [{ token: peerToken }, { token: ownToken }] }, callerIndex: 0 };
  if (path.index + 1 > segs.length) throw bad(encodeRegistryPath(path), `Index+1 (${path.index + 1}) must not exceed the number of segments (${segs.length})`);
  segs[path.index] = { token: peerToken };
  const index = path.index + 1;
  if (index < segs.length) segs[index] = { token: ownToken };
  else if (segs.length < MAX_PATH_SEGMENTS) segs.push({ token: ownToken });
  else throw bad(encodeRegistryPath(path), `a hop more would make more than ${MAX_PATH_SEGMENTS} segments`);
  return { path: { index, segments: segs }, callerIndex: index - 1 };
}

/** Sets `ids[index] = id`, or appends `id` when `index` is past the end (upstream `updatePathIDs`). Returns a copy. */
export function updatePathIds(pathIds: readonly string[], index: number, id: string): string[] {
  const out = [...pathIds];
  if (index >= out.length) out.push(id);
  else out[index] = id;
  return out;
}

/**
 * An endpoint's (or service's) `path_ids` after this hop's update of `path` (the result of
 * updateRegistryPath): the caller's SPIFFE ID (the `sub` of `peerToken`, '' when unreadable, as upstream)
 * at index-1 and this hop's at index. Throws when this hop's own token has no SPIFFE ID `sub`.
 */
export function registryPathIds(pathIds: readonly string[], path: RegistryPath, peerToken: string, ownToken: string): string[] {
  const own = tokenSubject(ownToken);
  if (own === undefined) throw new InvalidArgumentError('ownToken', ownToken.slice(0, 24), 'has no SPIFFE ID sub (is the token generator ES256 with an SVID?)');
  return updatePathIds(updatePathIds(pathIds, path.index - 1, tokenSubject(peerToken) ?? ''), path.index, own);
}
