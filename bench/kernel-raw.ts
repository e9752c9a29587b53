/**
 * Kernel baseline: the cost of giving two netns-resident veth ends their addresses and routes,
 * (a) the raw way — the same operations as hand-written `ip -batch` execs, one per netns — and
 * (b) through `linuxDataPlane().ensure` (fresh create), plus converged ensure, remove and raw delete.
 * Prints p50/p95 over N iterations (default 200) and the ratio. Needs root; cleans up everything.
 *
 *   node dist/bench/kernel-raw.js [iterations]
 *
 * `measureRawKernel` is exported for the end-to-end request benchmark, which reports the raw baseline
 * measured in the same run.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { silentLogger } from '../src/core/log.js';
import { linuxDataPlane } from '../src/dataplane/linux/index.js';
import { addNetns, delNetns, linuxSkipReason, type TestNetns } from '../src/dataplane/linux/testenv.js';
import type { PairSpec } from '../src/dataplane/types.js';

export interface Stats {
  n: number;
  p50: number;
  p95: number;
  mean: number;
}

export function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.round(q * (s.length - 1)))] ?? NaN;
  return { n: s.length, p50: at(0.5), p95: at(0.95), mean: s.reduce((x, y) => x + y, 0) / Math.max(1, s.length) };
}

function execIn(path: string, argv: string[], input?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn('nsenter', [`--net=${path}`, ...argv], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${argv.join(' ')}: exit ${code}: ${err.trim()}`))));
    c.stdin.on('error', () => undefined); // EPIPE when ip exits early: its exit code and stderr tell why
    c.stdin.end(input ?? '');
  });
}

/** The raw create: veth with each end in its netns, addresses, up, link routes; two `ip -batch` execs. */
export async function rawCreate(a: TestNetns, b: TestNetns): Promise<void> {
  await execIn(a.path, ['ip', '-batch', '-'], [`link add nsm-1 type veth peer name nse-1 netns ${b.path}`, 'addr add 172.16.1.101/32 dev nsm-1', 'link set dev nsm-1 up', 'route replace 172.16.1.100/32 dev nsm-1 scope link'].join('\n') + '\n');
  await execIn(b.path, ['ip', '-batch', '-'], ['addr add 172.16.1.100/32 dev nse-1', 'link set dev nse-1 up', 'route replace 172.16.1.101/32 dev nse-1 scope link'].join('\n') + '\n');
}

export async function rawDelete(a: TestNetns): Promise<void> {
  await execIn(a.path, ['ip', 'link', 'del', 'dev', 'nsm-1']);
}

export interface RawResult {
  create: Stats;
  delete: Stats;
}

/** Raw kernel baseline over `iterations` create+delete cycles in two fresh `nsmt-` netns. */
export async function measureRawKernel(iterations = 200): Promise<RawResult> {
  const a = await addNetns('a');
  const b = await addNetns('b');
  const create: number[] = [];
  const del: number[] = [];
  try {
    for (let i = 0; i < iterations; i++) {
      let t = performance.now();
      await rawCreate(a, b);
      create.push(performance.now() - t);
      t = performance.now();
      await rawDelete(a);
      del.push(performance.now() - t);
    }
  } finally {
    await delNetns(a, b);
  }
  return { create: stats(create), delete: stats(del) };
}

export interface DataPlaneResult {
  freshEnsure: Stats;
  convergedEnsure: Stats;
  remove: Stats;
}

/** The same cycle through `linuxDataPlane`: fresh ensure, converged ensure, remove. */
export async function measureLinuxDataPlane(iterations = 200): Promise<DataPlaneResult> {
  const a = await addNetns('a');
  const b = await addNetns('b');
  const dp = linuxDataPlane({ log: silentLogger });
  const fresh: number[] = [];
  const conv: number[] = [];
  const rm: number[] = [];
  try {
    for (let i = 0; i < iterations; i++) {
      const spec: PairSpec = {
        owner: `bench-${i}`,
        nsc: { netns: a.inodeUrl, name: 'nsm-1', addrs: ['172.16.1.101/32'], routes: [{ prefix: '172.16.1.100/32' }] },
        nse: { netns: b.inodeUrl, name: 'nse-1', addrs: ['172.16.1.100/32'], routes: [{ prefix: '172.16.1.101/32' }] },
      };
      let t = performance.now();
      await dp.ensure(spec);
      fresh.push(performance.now() - t);
      t = performance.now();
      const again = await dp.ensure(spec);
      conv.push(performance.now() - t);
      if (again.actions.length) throw new Error(`converged ensure changed something: ${again.actions.join(', ')}`);
      t = performance.now();
      await dp.remove(spec);
      rm.push(performance.now() - t);
    }
  } finally {
    await delNetns(a, b);
  }
  return { freshEnsure: stats(fresh), convergedEnsure: stats(conv), remove: stats(rm) };
}

const fmt = (s: Stats) => `p50 ${s.p50.toFixed(2).padStart(7)} ms   p95 ${s.p95.toFixed(2).padStart(7)} ms   (n=${s.n})`;

async function main(): Promise<void> {
  const skip = await linuxSkipReason();
  if (skip) {
    console.log(`kernel-raw: skipped: ${skip}`);
    return;
  }
  const n = Number(process.argv[2] ?? 200);
  const raw = await measureRawKernel(n);
  const dp = await measureLinuxDataPlane(n);
  console.log(`kernel-raw benchmark, ${n} iterations (veth pair, 1 address + 1 link route per end)`);
  console.log(`raw create (2 ip -batch execs)   ${fmt(raw.create)}`);
  console.log(`dataplane ensure, fresh          ${fmt(dp.freshEnsure)}`);
  console.log(`dataplane ensure, converged      ${fmt(dp.convergedEnsure)}`);
  console.log(`raw delete (ip link del)         ${fmt(raw.delete)}`);
  console.log(`dataplane remove                 ${fmt(dp.remove)}`);
  console.log(`ratio fresh ensure / raw create: p50 ${(dp.freshEnsure.p50 / raw.create.p50).toFixed(2)}x  p95 ${(dp.freshEnsure.p95 / raw.create.p95).toFixed(2)}x`);
  console.log(`ratio remove / raw delete:       p50 ${(dp.remove.p50 / raw.delete.p50).toFixed(2)}x  p95 ${(dp.remove.p95 / raw.delete.p95).toFixed(2)}x`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
