/**
 * What liveness probing costs (issue 11): CPU of probing N targets every `interval` with one `ping` per
 * target (the probe before issue 11) against one `fping` for all (`fping.ts`), children included, and the
 * replies each got. Root; makes two netns `nsmt-*` joined by one veth (the targets are N addresses on
 * the far end; the prober's work per target is the same as through N veths) and removes them.
 *
 *   node dist/src/dataplane/linux/probe-cost.js [N…]   (default 50 500; env COST_SECONDS, default 20)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { realClock } from '../../core/clock.js';
import { silentLogger } from '../../core/log.js';
import { sleep } from '../../core/signals.js';
import { IcmpProber } from './fping.js';
import { addNetns, delNetns, sh, type TestNetns } from './testenv.js';

const INTERVAL = 200;
const SECONDS = Number(process.env.COST_SECONDS ?? 20);
const WARMUP_MS = 3000;
const SRC = '10.91.255.1';
const target = (i: number) => `10.91.${Math.floor(i / 250)}.${(i % 250) + 1}`;

/** `pid` and every process below it. */
async function tree(pid: number): Promise<number[]> {
  const kids = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean).map(Number);
  return [pid, ...(await Promise.all(kids.map(tree))).flat()];
}

async function ticksOf(roots: number[]): Promise<number> {
  let sum = 0;
  for (const pid of (await Promise.all(roots.map(tree))).flat()) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    sum += Number(f[11] ?? 0) + Number(f[12] ?? 0);
  }
  return sum;
}

/** CPU (% of one core: this process and `pids()`) and replies over the measuring window. */
async function measure(pids: () => number[], replies: () => number): Promise<{ cpu: number; perTargetPerS: number }> {
  await sleep(WARMUP_MS);
  const [t0, c0, r0, w0] = [await ticksOf(pids()), process.cpuUsage(), replies(), Date.now()];
  await sleep(SECONDS * 1000);
  const [t1, c1, r1, w1] = [await ticksOf(pids()), process.cpuUsage(c0), replies(), Date.now()];
  const ms = w1 - w0;
  const cpuMs = (t1 - t0) * 10 + (c1.user + c1.system) / 1000;
  return { cpu: (100 * cpuMs) / ms, perTargetPerS: ((r1 - r0) * 1000) / ms };
}

async function withPings(a: TestNetns, n: number) {
  let replies = 0;
  const children: ChildProcess[] = [];
  for (let i = 0; i < n; i++) {
    const c = spawn('nsenter', [`--net=${a.path}`, 'ping', '-n', '-i', String(INTERVAL / 1000), '-W', '1', '-I', SRC, target(i)], { stdio: ['ignore', 'pipe', 'ignore'] });
    createInterface({ input: c.stdout! }).on('line', (l) => void (l.includes('bytes from') && replies++));
    children.push(c);
  }
  try {
    const r = await measure(() => children.map((c) => c.pid!), () => replies);
    return { ...r, perTargetPerS: r.perTargetPerS / n };
  } finally {
    for (const c of children) c.kill('SIGKILL');
  }
}

async function withFping(a: TestNetns, n: number) {
  const prober = new IcmpProber({ log: silentLogger, clock: realClock, netns: a.path }, { interval: INTERVAL, timeout: 1000 });
  const targets = Array.from({ length: n }, (_, i) => target(i));
  for (const t of targets) prober.add(t);
  try {
    const r = await measure(() => (prober.pid ? [prober.pid] : []), () => prober.replies);
    return { ...r, perTargetPerS: r.perTargetPerS / n };
  } finally {
    prober.stop();
  }
}

async function main(): Promise<void> {
  const ns = (process.argv.slice(2).length ? process.argv.slice(2) : ['50', '500']).map(Number);
  const a = await addNetns('ca');
  const b = await addNetns('cb');
  try {
    await sh('ip', ['link', 'add', 'cost0', 'netns', a.name, 'type', 'veth', 'peer', 'cost1', 'netns', b.name]);
    const lines = [`addr add ${SRC}/32 dev cost0`, 'link set cost0 up', 'route add 10.91.0.0/16 dev cost0'];
    for (const l of lines) await sh('ip', ['-n', a.name, ...l.split(' ')]);
    await sh('ip', ['-n', b.name, 'link', 'set', 'cost1', 'up']);
    await sh('ip', ['-n', b.name, 'route', 'add', `${SRC}/32`, 'dev', 'cost1']);
    for (let i = 0; i < Math.max(...ns); i++) await sh('ip', ['-n', b.name, 'addr', 'add', `${target(i)}/32`, 'dev', 'cost1']);
    console.log(`| targets | prober | CPU % of one core (children included) | replies per target per s |`);
    console.log(`|---|---|---|---|`);
    for (const n of ns) {
      for (const [name, run] of [['ping per target', withPings], ['one fping', withFping]] as const) {
        const r = await run(a, n);
        console.log(`| ${n} | ${name} | ${r.cpu.toFixed(1)} | ${r.perTargetPerS.toFixed(2)} |`);
      }
    }
  } finally {
    await delNetns(a, b);
  }
}

await main();
