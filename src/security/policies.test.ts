import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sign, type KeyObject } from 'node:crypto';
import { Status } from 'nice-grpc';
import { Writable } from 'node:stream';
import { PermissionDeniedError, toServerError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { makeTestSvid } from '../testing/svid.js';
import type { X509Svid } from './svid.js';
import {
  authorizeClient,
  authorizeRegistryClient,
  authorizeRegistryServer,
  authorizeServer,
  enforce,
  nextTokenSigned,
  prevTokenSigned,
  refusalError,
  registryCallerId,
  registryClientAllowed,
  tokensChained,
  tokensExpired,
  tokensValid,
  type PathPolicyInput,
  type PolicyName,
  type PolicyVerdict,
  type Refusal,
  type RegistryPolicyInput,
  type TokenSegment,
} from './policies.js';
import { signToken } from './token.js';

const ID = { nsc: 'spiffe://test.nsm/nsc', nsmgr: 'spiffe://test.nsm/nsmgr', fwd: 'spiffe://test.nsm/forwarder', nse: 'spiffe://test.nsm/nse' };
const svids: Record<keyof typeof ID, X509Svid> = { nsc: makeTestSvid(ID.nsc), nsmgr: makeTestSvid(ID.nsmgr), fwd: makeTestSvid(ID.fwd), nse: makeTestSvid(ID.nse) };
const NOW = 1_900_000_000_000; // a fixed "now" (ms); tokens are made relative to it
const NOW_S = NOW / 1000;

type Who = keyof typeof ID;
/** A token signed by `signer`; claims default to sub = signer, aud = [aud], exp = NOW + 10 min. */
function tok(signer: Who, aud: Who | null, claims: Record<string, unknown> = {}): string {
  const body = { sub: ID[signer], ...(aud ? { aud: [ID[aud]] } : {}), exp: NOW_S + 600, ...claims };
  return rawToken(body, svids[signer].privateKey);
}
/** Any claims, ES256-signed (signToken writes only sub/aud/exp; these rows need odd claims too). */
function rawToken(claims: Record<string, unknown>, key: KeyObject): string {
  const input = `${Buffer.from('{"alg":"ES256","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}
function seg(name: string, token: string): TokenSegment {
  return { name, token };
}
/** The path as it is at the NSC after a Request: each hop's token is for the next hop; the NSE's for its caller. */
function fullPath(): TokenSegment[] {
  return [seg('nsc', tok('nsc', 'nsmgr')), seg('nsmgr', tok('nsmgr', 'fwd')), seg('forwarder', tok('fwd', 'nse')), seg('nse', tok('nse', 'fwd'))];
}
/** The path as nsmgr sees it on a Request from the NSC: its own fresh token is for its caller. */
function atNsmgr(): TokenSegment[] {
  return [seg('nsc', tok('nsc', 'nsmgr')), seg('nsmgr', tok('nsmgr', 'nsc'))];
}
function input(segments: TokenSegment[], index: number, peer?: Who, now = NOW): PathPolicyInput {
  return { segments, index, now, peer: peer ? svids[peer].leaf : undefined };
}
function replace(segments: TokenSegment[], i: number, token: string): TokenSegment[] {
  return segments.map((s, j) => (j === i ? { ...s, token } : s));
}

interface Row<I> {
  /** The rego rule (upstream sdk v1.18.0 pkg/tools/opa/policies/…) this row exercises. */
  readonly rego: string;
  readonly name: string;
  readonly input: I;
  /** undefined: allowed; otherwise the refusal's policy and segment. */
  readonly refused?: { policy: PolicyName; segment: number };
}

function runTable<I>(check: (input: I) => Refusal | undefined, rows: Row<I>[]): void {
  for (const r of rows) {
    const got = check(r.input);
    const label = `${r.name} [${r.rego}]${got ? `: ${got.reason}` : ''}`;
    if (!r.refused) assert.equal(got, undefined, label);
    else {
      assert.ok(got, `${label}: expected a refusal`);
      assert.deepEqual({ policy: got.policy, segment: got.segment }, r.refused, label);
      assert.ok(got.reason.length > 0, label);
    }
  }
}

describe('tokens_valid', () => {
  it('every token decodes as a JWT', () => {
    runTable(tokensValid, [
      { rego: 'common/tokens_valid: valid { count(path_segments) == 0 }', name: 'empty path', input: input([], 0) },
      { rego: 'common/tokens_valid: every io.jwt.decode succeeds', name: 'four good tokens', input: input(fullPath(), 0) },
      { rego: 'common/tokens_valid: decode only, no signature check', name: 'a token signed by someone else still decodes', input: input(replace(fullPath(), 1, tok('nse', 'fwd')), 0) },
      { rego: 'common/tokens_valid: io.jwt.decode fails', name: 'missing token (empty string)', input: input(replace(fullPath(), 1, ''), 0), refused: { policy: 'tokens_valid', segment: 1 } },
      { rego: 'common/tokens_valid: io.jwt.decode fails', name: 'not a JWT', input: input(replace(fullPath(), 0, 'hs256-or-garbage'), 0), refused: { policy: 'tokens_valid', segment: 0 } },
      { rego: 'common/tokens_valid: io.jwt.decode fails', name: 'payload is not JSON', input: input(replace(fullPath(), 3, 'eyJhbGciOiJFUzI1NiJ9.bm90LWpzb24.c2ln'), 0), refused: { policy: 'tokens_valid', segment: 3 } },
    ]);
  });
});

describe('tokens_expired', () => {
  it('now < exp for every token', () => {
    runTable((i: PathPolicyInput) => tokensExpired(i), [
      { rego: 'common/tokens_expired: token_alive { now < payload.exp } for all', name: 'all alive', input: input(fullPath(), 0) },
      { rego: 'common/tokens_expired: count(alive) == count(segments)', name: 'segment 2 expired a second ago', input: input(replace(fullPath(), 2, tok('fwd', 'nse', { exp: NOW_S - 1 })), 0), refused: { policy: 'tokens_expired', segment: 2 } },
      { rego: 'common/tokens_expired: now < exp is strict', name: 'exp equal to now', input: input(replace(fullPath(), 0, tok('nsc', 'nsmgr', { exp: NOW_S })), 0), refused: { policy: 'tokens_expired', segment: 0 } },
      { rego: 'common/tokens_expired: now < exp is strict', name: 'one millisecond before exp', input: input(replace(fullPath(), 0, tok('nsc', 'nsmgr', { exp: NOW_S })), 0, undefined, NOW - 1) },
      { rego: 'common/tokens_expired: payload.exp undefined', name: 'no exp claim', input: input(replace(fullPath(), 1, tok('nsmgr', 'fwd', { exp: undefined })), 0), refused: { policy: 'tokens_expired', segment: 1 } },
      { rego: 'common/tokens_expired: reads exp only (no nbf/iat)', name: 'not yet valid (nbf in the future) is allowed', input: input(replace(fullPath(), 1, tok('nsmgr', 'fwd', { nbf: NOW_S + 300 })), 0) },
      { rego: 'common/tokens_expired: io.jwt.decode fails, token not alive', name: 'undecodable token', input: input(replace(fullPath(), 3, 'x.y'), 0), refused: { policy: 'tokens_expired', segment: 3 } },
    ]);
  });

  it('with notes (Close), an expired token is allowed and described', () => {
    const notes: string[] = [];
    const path = replace(replace(fullPath(), 0, tok('nsc', 'nsmgr', { exp: NOW_S - 60 })), 2, tok('fwd', 'nse', { exp: NOW_S - 5 }));
    assert.equal(tokensExpired(input(path, 0), notes), undefined);
    assert.equal(notes.length, 2);
    assert.match(notes[0], /^Close with an expired token of segment 0: allowed, cleaning up/);
    assert.match(notes[1], /^Close with an expired token of segment 2: allowed, cleaning up/);
    assert.equal(tokensExpired(input(replace(fullPath(), 1, tok('nsmgr', 'fwd', { exp: 'tomorrow' })), 0), [])?.policy, 'tokens_expired', 'a non-numeric exp is no expiry');
  });
});

describe('tokens_chained', () => {
  it('aud (an array) of segment i contains sub of segment i+1', () => {
    runTable(tokensChained, [
      { rego: 'common/tokens_chained: valid { count(path_segments) < 2 }', name: 'empty path', input: input([], 0) },
      { rego: 'common/tokens_chained: valid { count(path_segments) < 2 }', name: 'one segment, even without aud', input: input([seg('nsc', tok('nsc', null))], 0) },
      { rego: 'common/tokens_chained: pair_valid for every x', name: 'valid chain nsc → nsmgr → forwarder → nse', input: input(fullPath(), 0) },
      { rego: 'common/tokens_chained: pair_valid for every x', name: 'as nsmgr sees it (own token for its caller)', input: input(atNsmgr(), 1) },
      { rego: 'common/tokens_chained: p1.aud[_] == p2.sub', name: 'aud with several entries, one of them the next sub', input: input(replace(fullPath(), 0, tok('nsc', null, { aud: [ID.nse, ID.nsmgr] })), 0) },
      { rego: 'common/tokens_chained: pair_valid false', name: 'broken chain: nsc token for the forwarder', input: input(replace(fullPath(), 0, tok('nsc', 'fwd')), 0), refused: { policy: 'tokens_chained', segment: 0 } },
      { rego: 'common/tokens_chained: pair_valid false', name: 'wrong aud: forwarder token for nsmgr', input: input(replace(fullPath(), 2, tok('fwd', 'nsmgr')), 0), refused: { policy: 'tokens_chained', segment: 2 } },
      { rego: 'common/tokens_chained: p1.aud[_] undefined for a string', name: 'aud a plain string (not an array)', input: input(replace(fullPath(), 1, tok('nsmgr', null, { aud: ID.fwd })), 0), refused: { policy: 'tokens_chained', segment: 1 } },
      { rego: 'common/tokens_chained: pair_valid false', name: 'no aud (token minted without a peer)', input: input(replace(fullPath(), 0, tok('nsc', null)), 0), refused: { policy: 'tokens_chained', segment: 0 } },
      { rego: 'common/tokens_chained: p2.sub undefined', name: 'next token without sub', input: input(replace(fullPath(), 2, tok('fwd', 'nse', { sub: undefined })), 0), refused: { policy: 'tokens_chained', segment: 2 } },
      { rego: 'common/tokens_chained: payload(token) fails', name: 'missing token in the middle', input: input(replace(fullPath(), 2, ''), 0), refused: { policy: 'tokens_chained', segment: 2 } },
    ]);
  });
});

describe('prev_token_signed (server)', () => {
  it('the token of segment index-1 verifies with the TLS peer (the caller)', () => {
    runTable(prevTokenSigned, [
      { rego: 'server/prev_token_signed: io.jwt.verify_es256(path_segments[index-1].token, cert)', name: 'nsmgr, caller nsc signed segment 0', input: input(atNsmgr(), 1, 'nsc') },
      { rego: 'server/prev_token_signed: io.jwt.verify_es256', name: 'forwarder at index 2, caller nsmgr', input: input(fullPath().slice(0, 3), 2, 'nsmgr') },
      { rego: 'server/prev_token_signed: prev_index >= 0', name: 'index 0: no previous segment', input: input(atNsmgr(), 0, 'nsc'), refused: { policy: 'prev_token_signed', segment: 0 } },
      { rego: 'server/prev_token_signed: verify_es256 false', name: 'segment 0 signed by a different key than the caller', input: input(atNsmgr(), 1, 'nse'), refused: { policy: 'prev_token_signed', segment: 0 } },
      { rego: 'server/prev_token_signed: verify_es256 false', name: 'the caller replayed a token another workload signed', input: input(replace(atNsmgr(), 0, tok('nse', 'nsmgr', { sub: ID.nsc })), 1, 'nsc'), refused: { policy: 'prev_token_signed', segment: 0 } },
      { rego: 'server/prev_token_signed: auth_info.certificate empty', name: 'no peer certificate (no TLS)', input: input(atNsmgr(), 1), refused: { policy: 'prev_token_signed', segment: 0 } },
      { rego: 'server/prev_token_signed: verify_es256 false', name: 'missing token', input: input(replace(atNsmgr(), 0, ''), 1, 'nsc'), refused: { policy: 'prev_token_signed', segment: 0 } },
      { rego: 'server/prev_token_signed: path_segments[prev_index] undefined', name: 'index past the path', input: input(atNsmgr(), 3, 'nsc'), refused: { policy: 'prev_token_signed', segment: 2 } },
    ]);
  });
});

describe('next_token_signed (client)', () => {
  it('the token of segment index+1 of the returned path verifies with the TLS peer (the server)', () => {
    runTable(nextTokenSigned, [
      { rego: 'client/next_token_signed: io.jwt.verify_es256(path_segments[index+1].token, cert)', name: 'nsc, server nsmgr', input: input(fullPath(), 0, 'nsmgr') },
      { rego: 'client/next_token_signed: io.jwt.verify_es256', name: 'nsmgr as a client of the forwarder', input: input(fullPath(), 1, 'fwd') },
      { rego: 'client/next_token_signed: count(path_segments) > index', name: 'the server returned no segment of its own', input: input(fullPath().slice(0, 1), 0, 'nsmgr'), refused: { policy: 'next_token_signed', segment: 1 } },
      { rego: 'client/next_token_signed: verify_es256 false', name: 'segment 1 signed by the forwarder, server is nsmgr', input: input(replace(fullPath(), 1, tok('fwd', 'fwd', { sub: ID.nsmgr })), 0, 'nsmgr'), refused: { policy: 'next_token_signed', segment: 1 } },
      { rego: 'client/next_token_signed: auth_info.certificate empty', name: 'no server certificate', input: input(fullPath(), 0), refused: { policy: 'next_token_signed', segment: 1 } },
    ]);
  });
});

describe('registry_client_allowed', () => {
  const byNse = [seg('', tok('nse', 'nsmgr')), seg('', tok('nsmgr', 'nse'))];
  const byNsc = [seg('', tok('nsc', 'nsmgr')), seg('', tok('nsmgr', 'nsc'))];
  const reg = (segments: TokenSegment[], existingPathIds?: string[]): RegistryPolicyInput => ({ ...input(segments, 1, 'nse'), resourceName: 'nse-1', existingPathIds });
  it('a new name is allowed; a known one only for the first of its path_ids', () => {
    runTable(registryClientAllowed, [
      { rego: 'registry/client_allowed: not resource_path_ids_map[resource_name]', name: 'new endpoint name', input: reg(byNsc) },
      { rego: 'registry/client_allowed: resource_path_ids_map[name][0] == resource_id', name: 'refresh by the registrant', input: reg(byNse, [ID.nse, ID.nsmgr]) },
      { rego: 'registry/client_allowed: [0] only', name: 'refresh by the second of path_ids (the nsmgr on the way)', input: { ...reg(byNse, [ID.nse, ID.nsmgr]), segments: [seg('', tok('nsmgr', 'nse'))] }, refused: { policy: 'registry_client_allowed', segment: 0 } },
      { rego: 'registry/client_allowed: [0] != resource_id', name: 'unregister by another workload', input: reg(byNsc, [ID.nse, ID.nsmgr]), refused: { policy: 'registry_client_allowed', segment: 0 } },
      { rego: 'registry/client_allowed: map[name] defined but empty', name: 'known name with empty path_ids', input: reg(byNse, []), refused: { policy: 'registry_client_allowed', segment: 0 } },
      { rego: 'registry/client_allowed: resource_id from path_segments[0] sub', name: 'caller token unreadable, known name', input: reg([seg('', 'garbage')], ['']), refused: { policy: 'registry_client_allowed', segment: 0 } },
      { rego: 'registry/client_allowed: not map[name]', name: 'caller token unreadable, new name', input: reg([seg('', 'garbage')]) },
    ]);
    assert.equal(registryCallerId(byNse), ID.nse);
    assert.equal(registryCallerId([]), '');
  });
});

describe('policy sets (upstream authorize server / client)', () => {
  function refusalOf(v: PolicyVerdict): { policy: PolicyName; segment: number } | undefined {
    return v.refusal ? { policy: v.refusal.policy, segment: v.refusal.segment } : undefined;
  }

  it('server: common + prev on the left side of the path; client: common + next on all of it', () => {
    assert.deepEqual(authorizeServer(input(atNsmgr(), 1, 'nsc')), { notes: [] });
    const withStaleRight = [...atNsmgr(), seg('forwarder', 'stale-or-garbage')];
    assert.deepEqual(authorizeServer(input(withStaleRight, 1, 'nsc')), { notes: [] }, 'segments after index are not the server’s to judge');
    assert.deepEqual(refusalOf(authorizeServer(input(atNsmgr(), 0, 'nsc'))), { policy: 'prev_token_signed', segment: 0 });
    assert.deepEqual(refusalOf(authorizeServer(input(replace(atNsmgr(), 0, tok('nsc', 'fwd')), 1, 'nsc'))), { policy: 'tokens_chained', segment: 0 });
    assert.deepEqual(authorizeClient(input(fullPath(), 0, 'nsmgr')), { notes: [] });
    assert.deepEqual(refusalOf(authorizeClient(input(replace(fullPath(), 3, ''), 0, 'nsmgr'))), { policy: 'tokens_valid', segment: 3 });
  });

  it('Close is never refused for an expired token, and still is for a forged one', () => {
    const expired = replace(atNsmgr(), 0, tok('nsc', 'nsmgr', { exp: NOW_S - 30 }));
    assert.deepEqual(refusalOf(authorizeServer(input(expired, 1, 'nsc'))), { policy: 'tokens_expired', segment: 0 }, 'a Request is refused');
    const close = authorizeServer(input(expired, 1, 'nsc'), { forClose: true });
    assert.equal(close.refusal, undefined);
    assert.equal(close.notes.length, 1);
    assert.match(close.notes[0], /^Close with an expired token of segment 0: allowed, cleaning up/);
    const forged = replace(atNsmgr(), 0, tok('nse', 'nsmgr', { sub: ID.nsc, exp: NOW_S - 30 }));
    assert.deepEqual(refusalOf(authorizeServer(input(forged, 1, 'nsc'), { forClose: true })), { policy: 'prev_token_signed', segment: 0 });
    const clientClose = authorizeClient(input(replace(fullPath(), 2, tok('fwd', 'nse', { exp: NOW_S - 1 })), 0, 'nsmgr'), { forClose: true });
    assert.equal(clientClose.refusal, undefined);
    assert.match(clientClose.notes[0], /segment 2/);
  });

  it('registry server: common + client allowed + prev; registry client: common + client allowed + next', () => {
    // At the registry: [nse (caller of nsmgr), nsmgr (caller of the registry), registry]
    const registry = makeTestSvid('spiffe://test.nsm/registry');
    const path = [seg('', tok('nse', 'nsmgr')), seg('', tok('nsmgr', null, { aud: ['spiffe://test.nsm/registry'] })), seg('', signToken({ sub: 'spiffe://test.nsm/registry', aud: [ID.nsmgr], exp: NOW_S + 600 }, registry.privateKey))];
    const at = (existingPathIds?: string[]): RegistryPolicyInput => ({ segments: path, index: 2, now: NOW, peer: svids.nsmgr.leaf, resourceName: 'nse-1', existingPathIds });
    assert.deepEqual(authorizeRegistryServer(at()), { notes: [] });
    assert.deepEqual(authorizeRegistryServer(at([ID.nse, ID.nsmgr, 'spiffe://test.nsm/registry'])), { notes: [] });
    assert.deepEqual(refusalOf(authorizeRegistryServer(at([ID.nsc, ID.nsmgr]))), { policy: 'registry_client_allowed', segment: 0 });
    const returned: RegistryPolicyInput = { segments: path.slice(0, 2), index: 0, now: NOW, peer: svids.nsmgr.leaf, resourceName: 'nse-1' };
    assert.deepEqual(authorizeRegistryClient(returned), { notes: [] });
    assert.deepEqual(refusalOf(authorizeRegistryClient({ ...returned, segments: path.slice(0, 1) })), { policy: 'next_token_signed', segment: 1 });
  });

  it('enforce logs a refusal once (and the Close notes) and throws it', () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } });
    const log = createLogger('test', 'info', sink);
    const expired = replace(atNsmgr(), 0, tok('nsc', 'nsmgr', { exp: NOW_S - 1 }));
    assert.doesNotThrow(() => enforce(authorizeServer(input(expired, 1, 'nsc'), { forClose: true }), log));
    assert.throws(() => enforce(authorizeServer(input(expired, 1, 'nsc')), log), { name: 'PermissionDeniedError', policy: 'tokens_expired', segment: 0 });
    assert.doesNotThrow(() => enforce(authorizeServer(input(atNsmgr(), 1, 'nsc')), log));
    assert.deepEqual(lines.map((l) => [l.level, l.msg, l.policy]), [
      [30, lines[0].msg, undefined],
      [40, 'permission denied by policy', 'tokens_expired'],
    ]);
    assert.match(String(lines[0].msg), /^Close with an expired token of segment 0: allowed, cleaning up/);
  });

  it('a refusal is a PermissionDenied naming the policy and the segment', () => {
    const refusal = authorizeServer(input(replace(atNsmgr(), 0, tok('nsc', 'nsmgr', { exp: NOW_S - 1 })), 1, 'nsc')).refusal;
    assert.ok(refusal);
    const err = refusalError(refusal);
    assert.ok(err instanceof PermissionDeniedError);
    assert.equal(err.name, 'PermissionDeniedError');
    assert.equal(err.policy, 'tokens_expired');
    assert.equal(err.segment, 0);
    assert.match(err.message, /^policy tokens_expired refused path segment 0 \(nsc\): the token expired at /);
    assert.equal(toServerError(err).code, Status.PERMISSION_DENIED);
  });
});

describe('policy cost', () => {
  it('a server check and a client check cost well under a millisecond', (t) => {
    const server = input(atNsmgr(), 1, 'nsc');
    const client = input(fullPath(), 0, 'nsmgr');
    const n = 1000;
    const rate = (f: () => PolicyVerdict) => {
      const start = process.hrtime.bigint();
      for (let i = 0; i < n; i++) assert.equal(f().refusal, undefined);
      return n / (Number(process.hrtime.bigint() - start) / 1e9);
    };
    const s = rate(() => authorizeServer(server));
    const c = rate(() => authorizeClient(client));
    t.diagnostic(`authorizeServer (2 segments) ${Math.round(s)}/s, authorizeClient (4 segments) ${Math.round(c)}/s`);
    // A floor that catches an accidental slow path, not a benchmark (one verify is ~0.1–0.3 ms).
    assert.ok(s > 500 && c > 500, `${s}/s, ${c}/s`);
  });
});
