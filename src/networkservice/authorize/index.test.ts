import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { networkServiceChain } from '../../core/chain.js';
import { FakeClock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { clientTokenMetadata, type IssuedToken } from '../../core/token.js';
import { decodeToken, signToken, tokenRequestFor } from '../../security/token.js';
import { count } from '../../testing/count.js';
import { defaultRequest } from '../../testing/requests.js';
import { capturedLog, testIdentity } from '../../testing/secure-hop.js';
import { beginServer } from '../begin/index.js';
import { updatePathServer } from '../update-path/index.js';
import { updateTokenServer } from '../update-token/index.js';
import { timeoutServer } from '../timeout/index.js';
import { authorizeServer } from './index.js';

async function waitUntil(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(cond(), 'condition not reached');
}

const nsc = testIdentity('spiffe://authz.test/ns/pod-1/nsc');
const nsmgr = testIdentity('spiffe://authz.test/nsmgr');
/** The same SPIFFE ID as the NSC, another key: its tokens are well formed but not the caller's. */
const forger = testIdentity('spiffe://authz.test/ns/pod-1/nsc');

/** nsmgr's server chain head, as the endpoint chain has it, with a counter where the working elements start. */
function hop(clock: FakeClock) {
  const after = count('after-authorize');
  const chain = networkServiceChain('nsmgr', [
    updatePathServer({ name: 'nsmgr' }),
    beginServer({ clock }),
    updateTokenServer({ tokens: nsmgr.tokens }),
    authorizeServer({ clock }, { insecure: false }),
    after,
  ]);
  return { chain, after };
}

const request = (id: string) => defaultRequest({ id, pathSegments: [{ name: 'nsc', id }] });
/** The context of a call from the NSC over mTLS, carrying `token` as its nsm-client-token. */
const fromNsc = (token: IssuedToken, log = capturedLog().log) => newContext({ metadata: clientTokenMetadata(token), peerIdentity: nsc.peer, log });
const forNsmgr = () => tokenRequestFor(nsmgr.svid.leaf);

function denied(policy: string, segment: number) {
  return (err: Error & { policy?: string; segment?: number }) => {
    assert.equal(err.name, 'PermissionDeniedError');
    assert.equal(err.policy, policy);
    assert.equal(err.segment, segment);
    assert.match(err.message, new RegExp(`policy ${policy} refused path segment ${segment} \\(nsc\\)`));
    return true;
  };
}

function refusalsLogged(lines: Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  return lines.filter((l) => l.msg === 'permission denied by policy');
}

describe('authorize server (ES256 tokens, real certificates)', () => {
  it('passes a valid chain; the token of this hop is for the caller', async () => {
    const clock = new FakeClock(Date.now());
    const { chain, after } = hop(clock);
    const conn = await chain.request(request('ok-1'), fromNsc(nsc.tokens.issue(forNsmgr())));
    assert.equal(after.requests, 1);
    const [seg0, seg1] = conn.path!.pathSegments;
    assert.equal(decodeToken(seg0.token).payload.sub, nsc.spiffeId);
    assert.deepEqual(decodeToken(seg1.token).payload.aud, [nsc.spiffeId]);
    assert.equal(decodeToken(seg1.token).payload.sub, nsmgr.spiffeId);
    await chain.close(conn, fromNsc(nsc.tokens.issue(forNsmgr())));
    assert.equal(after.closes, 1);
  });

  it('refuses a well-formed token signed by another key (prev_token_signed), logged once; nothing after runs', async () => {
    const clock = new FakeClock(Date.now());
    const { chain, after } = hop(clock);
    const log = capturedLog('info');
    await assert.rejects(chain.request(request('forged-1'), fromNsc(forger.tokens.issue(forNsmgr()), log.log)), denied('prev_token_signed', 0));
    assert.equal(after.requests, 0);
    const logged = refusalsLogged(log.lines());
    assert.equal(logged.length, 1);
    assert.equal(logged[0].policy, 'prev_token_signed');
    assert.equal(logged[0].element, 'authorize-server');
  });

  it('refuses a broken chain: the token of the caller is not for this hop (tokens_chained)', async () => {
    const { chain, after } = hop(new FakeClock(Date.now()));
    const other = nsc.tokens.issue({ audience: 'spiffe://authz.test/someone-else' });
    await assert.rejects(chain.request(request('chain-1'), fromNsc(other)), denied('tokens_chained', 0));
    assert.equal(after.requests, 0);
  });

  it('refuses a Request whose caller sent no token (the previous segment has none to verify)', async () => {
    const { chain, after } = hop(new FakeClock(Date.now()));
    await assert.rejects(chain.request(request('none-1'), newContext({ peerIdentity: nsc.peer })), { name: 'PermissionDeniedError', policy: 'tokens_valid' });
    assert.equal(after.requests, 0);
  });

  it('refuses a Request with an expired token; a Close with one is allowed and logged', async () => {
    const start = Date.now();
    const clock = new FakeClock(start);
    const { chain, after } = hop(clock);
    // begin logs a connection's calls through the logger of its first Request
    const log = capturedLog('info');
    const conn = await chain.request(request('exp-1'), fromNsc(nsc.tokens.issue(forNsmgr()), log.log));
    const expiring = nscToken(start + 2000); // signed by the NSC's own key, 2 s of life
    await clock.advance(5000);
    await assert.rejects(chain.request(request('exp-1'), fromNsc(expiring, log.log)), denied('tokens_expired', 0));
    assert.equal(refusalsLogged(log.lines()).length, 1);
    await chain.close(conn, fromNsc(expiring, log.log));
    assert.equal(after.closes, 1, 'the Close went on to clean up');
    const notes = log.lines().filter((l) => /Close with an expired token of segment 0: allowed, cleaning up/.test(String(l.msg)));
    assert.equal(notes.length, 1);
    assert.equal(refusalsLogged(log.lines()).length, 1, 'only the refused Request');
  });

  it('still refuses a forged token on Close', async () => {
    const clock = new FakeClock(Date.now());
    const { chain, after } = hop(clock);
    const conn = await chain.request(request('close-forged'), fromNsc(nsc.tokens.issue(forNsmgr())));
    await assert.rejects(chain.close(conn, fromNsc(forger.tokens.issue(forNsmgr()))), denied('prev_token_signed', 0));
    assert.equal(after.closes, 0);
  });

  it('a Close from the hop itself (timeout, after a stalled hop: the stored token expired) runs as the original caller and cleans up', async () => {
    const start = Date.now();
    const clock = new FakeClock(start); // the timers'
    const wall = new FakeClock(start); // what authorize reads: ahead of the timers when the hop was stopped
    const after = count('after-authorize');
    const log = capturedLog('info');
    const chain = networkServiceChain('nsmgr', [
      updatePathServer({ name: 'nsmgr' }),
      beginServer({ clock }),
      updateTokenServer({ tokens: nsmgr.tokens }),
      authorizeServer({ clock: wall }, { insecure: false }),
      timeoutServer({ clock }),
      after,
    ]);
    await chain.request(request('timeout-1'), fromNsc(nscToken(start + 4000), log.log));
    // the hop was stopped past the token's expiry: its timer fires late, the stored token has expired
    await wall.advance(10_000);
    await clock.advance(10_000);
    await waitUntil(() => after.closes === 1);
    assert.equal(refusalsLogged(log.lines()).length, 0, 'not refused: the event has the caller certificate');
    assert.equal(log.lines().filter((l) => /Close with an expired token of segment 0/.test(String(l.msg))).length, 1);
  });

  it('passes everything through on an insecure hop (no policies, as before)', async () => {
    const after = count();
    const chain = networkServiceChain('insecure', [updatePathServer({ name: 'nsmgr' }), updateTokenServer({ tokens: nsmgr.tokens }), authorizeServer({}, { insecure: true }), after]);
    await chain.request(request('plain-1'), newContext());
    assert.equal(after.requests, 1);
  });
});

/** A token of the NSC for nsmgr, signed with the NSC's SVID key, expiring at `expMs`. */
function nscToken(expMs: number): IssuedToken {
  const exp = Math.floor(expMs / 1000);
  return { token: signToken({ sub: nsc.spiffeId, aud: [nsmgr.spiffeId], exp }, nsc.svid.privateKey), expires: new Date(exp * 1000) };
}
