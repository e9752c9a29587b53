/**
 * What mTLS costs on a gRPC hop, next to plaintext in the same run (not part of `npm run bench`):
 *
 *   node dist/bench/mtls-cost.js [--connections 200] [--calls 2000]
 *
 * - handshake: a new channel to a server in this process, from creation to the answer of its first
 *   Health/Check (connect + TLS handshake + HTTP/2 setup + one call), plaintext vs mTLS, unix and tcp; and
 *   the bare TLS handshake (tls.connect to secureConnect) on the same unix socket.
 * - per call: `--calls` unary Health/Check calls, one after another, on one established channel,
 *   plaintext vs mTLS, in alternating rounds so that the machine's drift hits both alike.
 * Client and server share one event loop, so every number holds both ends' work. Besides wall time, each
 * line gives the process CPU time per operation (user+system / n), which a loaded host disturbs far less.
 * SVIDs: EC P-256 from the embedded CA (security/ca.ts), as SPIRE issues by default.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect as tlsConnect } from 'node:tls';
import { parseArgs } from 'node:util';
import { HealthDefinition } from '../src/api/gen/health.js';
import { createChannel, type Channel } from 'nice-grpc';
import { CHANNEL_OPTIONS, createClient, grpcTarget, openChannel, serve } from '../src/core/transport.js';
import { createCa } from '../src/security/ca.js';
import type { X509Material, X509Source } from '../src/security/svid.js';
import { INSECURE, mtls, type TransportSecurity } from '../src/security/tls.js';

const { values } = parseArgs({ options: { connections: { type: 'string', default: '200' }, calls: { type: 'string', default: '2000' } } });
const CONNECTIONS = Math.min(Math.max(Number(values.connections), 10), 5000);
const CALLS = Math.min(Math.max(Number(values.calls), 100), 100_000);

function staticSource(material: X509Material): X509Source {
  return { current: () => material, ready: async () => material, onUpdate: () => () => {}, close: () => {} };
}

function stats(ms: number[], cpuMicros: number): string {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return `wall mean ${mean.toFixed(3)} ms  p50 ${q(0.5).toFixed(3)}  p95 ${q(0.95).toFixed(3)}  p99 ${q(0.99).toFixed(3)}  cpu ${(cpuMicros / s.length / 1000).toFixed(3)} ms/op  (n=${s.length})`;
}

const cpuNow = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

/**
 * The pool's channel; a plaintext one gets the same 10 s connection-attempt deadline as an mTLS one
 * (openChannel keeps the 50 ms of CHANNEL_OPTIONS for plaintext, which a loaded host misses).
 */
function channel(url: string, security: TransportSecurity): Channel {
  if (security.kind === 'mtls') return openChannel(url, security);
  return createChannel(grpcTarget(url), undefined, { ...CHANNEL_OPTIONS, 'grpc.min_reconnect_backoff_ms': 10_000 });
}

async function firstCall(url: string, security: TransportSecurity): Promise<number> {
  const t0 = performance.now();
  const ch = channel(url, security);
  await createClient(HealthDefinition, ch).check({ service: '' });
  const dt = performance.now() - t0;
  ch.close();
  return dt;
}

function bareHandshake(path: string, material: X509Material): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ path, ca: material.bundles.get('bench.test'), cert: material.svid.certChainPem, key: material.svid.keyPem, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined }, () => {
      const dt = performance.now() - t0;
      s.destroy();
      resolve(dt);
    });
    s.once('error', reject);
  });
}

async function perCall(url: string, security: TransportSecurity, n: number): Promise<number[]> {
  const ch = channel(url, security);
  const health = createClient(HealthDefinition, ch);
  await health.check({ service: '' });
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await health.check({ service: '' });
    out.push(performance.now() - t0);
  }
  ch.close();
  return out;
}

async function main(): Promise<void> {
  const ca = createCa({ trustDomain: 'bench.test' });
  const serverMaterial = { svid: ca.issue({ spiffeId: 'spiffe://bench.test/server' }), bundles: ca.bundles };
  const clientMaterial = { svid: ca.issue({ spiffeId: 'spiffe://bench.test/client' }), bundles: ca.bundles };
  const secure = { server: mtls(staticSource(serverMaterial)), client: mtls(staticSource(clientMaterial)) };
  const dir = mkdtempSync(join(tmpdir(), 'nsm-mtls-bench-'));
  const plainServer = await serve([`unix://${join(dir, 'plain.sock')}`, 'tcp://127.0.0.1:0'], [], INSECURE);
  const tlsServer = await serve([`unix://${join(dir, 'tls.sock')}`, 'tcp://127.0.0.1:0'], [], secure.server);
  try {
    console.log(`node ${process.version}, ${CONNECTIONS} connections, ${CALLS} calls each way`);
    for (const [kind, i] of [['unix', 0], ['tcp', 1]] as const) {
      const plain: number[] = [];
      const tls: number[] = [];
      const cpu = { plain: 0, tls: 0 };
      for (let c = 0; c < CONNECTIONS; c++) {
        let c0 = cpuNow();
        plain.push(await firstCall(plainServer.addresses[i], INSECURE));
        cpu.plain += cpuNow() - c0;
        c0 = cpuNow();
        tls.push(await firstCall(tlsServer.addresses[i], secure.client));
        cpu.tls += cpuNow() - c0;
      }
      console.log(`new channel + first call, ${kind}, plaintext: ${stats(plain, cpu.plain)}`);
      console.log(`new channel + first call, ${kind}, mTLS:      ${stats(tls, cpu.tls)}`);
    }
    const bare: number[] = [];
    const c0 = cpuNow();
    for (let c = 0; c < CONNECTIONS; c++) bare.push(await bareHandshake(join(dir, 'tls.sock'), clientMaterial));
    console.log(`bare TLS handshake (tls.connect → secureConnect), unix: ${stats(bare, cpuNow() - c0)}`);
    for (const [kind, i] of [['unix', 0], ['tcp', 1]] as const) {
      const plain: number[] = [];
      const tls: number[] = [];
      const cpu = { plain: 0, tls: 0 };
      const rounds = 4;
      for (let r = 0; r < rounds; r++) {
        let c0 = cpuNow();
        plain.push(...(await perCall(plainServer.addresses[i], INSECURE, CALLS / rounds)));
        cpu.plain += cpuNow() - c0;
        c0 = cpuNow();
        tls.push(...(await perCall(tlsServer.addresses[i], secure.client, CALLS / rounds)));
        cpu.tls += cpuNow() - c0;
      }
      console.log(`unary call on an established channel, ${kind}, plaintext: ${stats(plain, cpu.plain)}`);
      console.log(`unary call on an established channel, ${kind}, mTLS:      ${stats(tls, cpu.tls)}`);
    }
  } finally {
    await plainServer.stop({ force: true });
    await tlsServer.stop({ force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
