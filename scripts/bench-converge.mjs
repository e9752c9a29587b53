// Cost of a converged ensure (a refresh or repair of a healthy pair) against the number of other links in
// the NSE netns: the Linux data plane's `ensure` of one pair, repeated, with 1 and then 500 other links
// (veth ends with an address and a route each, as other connections' ends would have; their peers in a
// third netns) beside it.
// Prints median and p90 per size; the 1-link figure is the baseline of the same run.
// Usage (root): npm run build && node scripts/bench-converge.mjs [dist dir, default ./dist] [rounds, default 50]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = resolve(process.argv[2] ?? 'dist');
const rounds = Number(process.argv[3] ?? 50);
if (!Number.isInteger(rounds) || rounds < 5 || rounds > 10_000) throw new Error(`rounds must be an integer in 5..10000, got ${process.argv[3]}`);
const { linuxDataPlane } = await import(pathToFileURL(`${dist}/src/dataplane/linux/index.js`).href);
const { silentLogger } = await import(pathToFileURL(`${dist}/src/core/log.js`).href);

const ip = (...args) => execFileSync('ip', args, { encoding: 'utf8' });
const tag = randomBytes(3).toString('hex');
const nsc = `nsmt-bench-nsc-${tag}`;
const nse = `nsmt-bench-nse-${tag}`;
const peers = `nsmt-bench-peers-${tag}`;

/** `count` veth ends `dN` with 10.99.x.y/32 and a route each (peers in `peers`), in one batch. */
function addOthers(ns, from, count) {
  const lines = [];
  for (let i = from; i < from + count; i++) {
    const a = `10.99.${i >> 8}.${i & 255}`;
    lines.push(`link add d${i} type veth peer name p${i} netns /run/netns/${peers}`, `addr add ${a}/32 dev d${i}`, `link set d${i} up`, `route add 10.98.${i >> 8}.${i & 255}/32 dev d${i}`);
  }
  execFileSync('ip', ['-n', ns, '-batch', '-'], { input: lines.join('\n') + '\n' });
}

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { median: +at(0.5).toFixed(2), p90: +at(0.9).toFixed(2) };
}

async function measure(dp, spec) {
  for (let i = 0; i < 5; i++) await dp.ensure(spec);
  const ms = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    const st = await dp.ensure(spec);
    ms.push(performance.now() - t0);
    if (st.actions.length) throw new Error(`not converged: ${st.actions.join(', ')}`);
  }
  return stats(ms);
}

for (const ns of [nsc, nse, peers]) ip('netns', 'add', ns);
try {
  const dp = linuxDataPlane({ log: silentLogger });
  const spec = {
    owner: `bench-${tag}`,
    nsc: { netns: `file:///run/netns/${nsc}`, name: 'nsm-1', addrs: ['172.16.1.101/32'], routes: [{ prefix: '172.16.1.100/32' }] },
    nse: { netns: `file:///run/netns/${nse}`, name: 'nse-1', addrs: ['172.16.1.100/32'], routes: [{ prefix: '172.16.1.101/32' }] },
  };
  await dp.ensure(spec);
  const rows = [];
  addOthers(nse, 0, 1);
  rows.push({ otherLinks: 1, ...(await measure(dp, spec)) });
  addOthers(nse, 1, 499);
  rows.push({ otherLinks: 500, ...(await measure(dp, spec)) });
  console.log(`converged ensure, ${rounds} rounds each, data plane from ${dist}`);
  console.table(rows);
  console.log(`500 vs 1 other links: median ×${(rows[1].median / rows[0].median).toFixed(2)}`);
} finally {
  for (const ns of [nsc, nse, peers]) ip('netns', 'del', ns);
}
