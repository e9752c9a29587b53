/**
 * Test helpers for secure hops: a workload's identity (a real X.509-SVID from the test CA, its X509Source,
 * its ES256 path-token generator, mTLS transport security and the PeerIdentity a server sees of it), and
 * a logger whose lines a test can read back (to check that a refusal is logged once, at the refusing hop).
 */
import { Writable } from 'node:stream';
import type { Clock } from '../core/clock.js';
import { createLogger, type Logger } from '../core/log.js';
import { mtls, type Mtls, type PeerIdentity } from '../security/tls.js';
import { es256TokenGenerator, type Es256TokenGenerator } from '../security/token.js';
import type { X509Svid } from '../security/svid.js';
import { makeTestSvid, testX509Source, type TestSvidOptions, type TestX509Source } from './svid.js';

export interface TestIdentity {
  readonly spiffeId: string;
  readonly svid: X509Svid;
  readonly source: TestX509Source;
  readonly tokens: Es256TokenGenerator;
  readonly security: Mtls;
  /** What a server's `ctx.peerIdentity` holds for a caller with this identity. */
  readonly peer: PeerIdentity;
}

export function testIdentity(spiffeId: string, options: { svid?: TestSvidOptions; maxTokenLifetime?: number; clock?: Clock; log?: Logger } = {}): TestIdentity {
  const svid = makeTestSvid(spiffeId, options.svid);
  const source = testX509Source(svid);
  return {
    spiffeId,
    svid,
    source,
    tokens: es256TokenGenerator(source, { maxTokenLifetime: options.maxTokenLifetime, clock: options.clock }),
    security: mtls(source, { log: options.log }),
    peer: { spiffeId, certificate: svid.leaf },
  };
}

export interface CapturedLog {
  readonly log: Logger;
  /** The JSON lines logged so far. */
  lines(): Array<Record<string, unknown>>;
}

/** A logger at `level` (default debug) that keeps its lines in memory. */
export function capturedLog(level: 'debug' | 'info' | 'warn' = 'debug'): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger('test', level, sink), lines: () => [...lines] };
}
