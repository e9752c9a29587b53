/**
 * Soak: `--soak-minutes` (default 15) of churn on a mesh holding `--alive` (default 200) connections,
 * then a leak check. Topology: registry, nsmgr, forwarder, one NSE with a /16 (service `soak`), and
 * alive/50 long-lived `nsm nsc` processes with 50 NSURLs each. Three loops run side by side:
 * - churn: an extra `nsm nsc` with 10 connections in a fresh netns is started, waited for, held 1 s and
 *   stopped with SIGTERM; the links it left in its netns are counted (expected 0); the netns is deleted;
 * - interrupt: every 5 s one random interface of a long-lived NSC is set down (`ip link set nsm-<j> down`
 *   in its netns); the time until that NSC logs one more "heal healed" and the link is up again is recorded;
 * - sample: every `--sample` s (default: 60 samples over the run, at least 5 s apart) RSS, open fds and
 *   live child processes of registry, nsmgr, forwarder, the NSE and each long-lived NSC.
 * Result: per component and figure the first and last sample and the least-squares slope per minute over
 * the second half of the run (the first half includes warm-up: JIT, pools, caches); "flat" = RSS slope
 * ≤ 1 MiB/min, fds ≤ 1/min, children ≤ 0.5/min. At the end every long-lived NSC gets SIGTERM and the NSE
 * netns must be empty within 60 s ("no leaked link").
 *
 *   node dist/bench/soak.js [--soak-minutes 15] [--alive 200] [--sample S] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import {
  addNs, benchDir, countAll, cpuTicks, CLK_TCK, delNs, descendants, execIn, fdCount, linkView, LogCounter, machineInfo, ms, nonLoLinks, numArg, progress,
  argValue, rssMiB, runBench, sleep, startMesh, startNse, startNsm, table, waitUntil, wallNow, type Mesh, type Ns, type Proc,
} from './lib.js';

const SERVICE = 'soak';

export interface SoakOptions {
  minutes: number;
  alive: number;
  sampleS: number;
}

interface Sample {
  tMin: number;
  figures: Record<string, { rss: number; fds: number; children: number }>;
  nseLinks: number;
}

export interface Trend {
  component: string;
  figure: 'rss' | 'fds' | 'children';
  first: number;
  last: number;
  slopePerMin: number;
  flat: boolean;
}

export interface SoakResult {
  minutes: number;
  alive: number;
  upMs: number;
  churn: { cycles: number; failed: number; linksLeft: number };
  interrupts: { count: number; healed: number; healMsP50: number; healMsMax: number; healEvents: number };
  retries: number;
  cpuPct: Record<string, number>;
  samples: Sample[];
  trends: Trend[];
  flat: boolean;
  /** False for runs shorter than 10 minutes: a smoke run, its slopes are noise (no verdict). */
  judged: boolean;
  leakCheck: { linksLeft: number; goneMs: number };
}

const LIMIT: Record<Trend['figure'], number> = { rss: 1, fds: 1, children: 0.5 };

/** Least-squares slope of y over x. */
export function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const mx = xs.reduce((s, x) => s + x, 0) / n;
  const my = ys.reduce((s, y) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

export function trends(samples: Sample[]): Trend[] {
  const half = samples.filter((s) => s.tMin >= (samples.at(-1)?.tMin ?? 0) / 2);
  const out: Trend[] = [];
  for (const component of Object.keys(samples[0]?.figures ?? {})) {
    for (const figure of ['rss', 'fds', 'children'] as const) {
      const pts = half.filter((s) => Number.isFinite(s.figures[component]?.[figure]));
      const sl = slope(pts.map((s) => s.tMin), pts.map((s) => s.figures[component]![figure]));
      out.push({
        component, figure, first: samples[0]!.figures[component]![figure], last: samples.at(-1)!.figures[component]![figure], slopePerMin: sl,
        flat: Number.isFinite(sl) && sl <= LIMIT[figure],
      });
    }
  }
  return out;
}

interface World {
  mesh: Mesh;
  nse: Proc;
  nseNs: Ns;
  nscs: Array<{ proc: Proc; ns: Ns; log: LogCounter; count: number }>;
  stop: boolean;
}

async function churnLoop(w: World, r: SoakResult): Promise<void> {
  for (let i = 0; !w.stop; i++) {
    const ns = await addNs('churn');
    const urls = Array.from({ length: 10 }, (_, j) => `kernel://${SERVICE}/nsm-${j}`).join(',');
    const p = startNsm(w.mesh.dir, `churn-${i}`, ['nsc'], { NSM_CONNECT_TO: w.mesh.sock.nsmgr, NSM_NAME: `churn-${i}`, NSM_NETWORK_SERVICES: urls }, ns);
    const log = new LogCounter(p.logFile);
    const up = await waitUntil(`churn ${i} connected`, () => log.count('connection established') >= 10, 30_000);
    if (up) await sleep(1000);
    await p.kill('SIGTERM', 60_000);
    const left = (await nonLoLinks(ns)).length;
    r.churn.cycles++;
    if (!up) r.churn.failed++;
    r.churn.linksLeft += left;
    r.retries += log.count('request failed; retrying');
    await delNs(ns);
  }
}

async function interruptLoop(w: World, r: SoakResult, healMs: number[]): Promise<void> {
  while (!w.stop) {
    await sleep(5000);
    if (w.stop) break;
    const c = w.nscs[Math.floor(Math.random() * w.nscs.length)]!;
    const dev = `nsm-${Math.floor(Math.random() * c.count)}`;
    const healed0 = c.log.count('heal healed');
    const t0 = wallNow();
    const down = await execIn(c.ns.path, ['ip', 'link', 'set', dev, 'down']).then(() => true, () => false);
    if (!down) continue;
    r.interrupts.count++;
    const ok = await waitUntil(`heal of ${c.proc.name} ${dev}`, async () => c.log.count('heal healed') > healed0 && !!(await linkView(c.ns, dev))?.flags.includes('UP'), 15_000, 50);
    if (ok) {
      r.interrupts.healed++;
      healMs.push(wallNow() - t0);
    }
  }
}

function sampleNow(w: World, t0: number, nseLinks: number): Sample {
  const procs: Array<[string, Proc]> = [
    ['registry', w.mesh.procs.registry], ['nsmgr', w.mesh.procs.nsmgr], ['forwarder', w.mesh.procs.forwarder], ['nse', w.nse],
    ...w.nscs.map((c): [string, Proc] => [c.proc.name, c.proc]),
  ];
  const figures = Object.fromEntries(procs.map(([n, p]) => [n, { rss: rssMiB(p.pid), fds: fdCount(p.pid), children: descendants(p.pid).length }]));
  return { tMin: (wallNow() - t0) / 60_000, figures, nseLinks };
}

async function sampleLoop(w: World, r: SoakResult, t0: number, everyMs: number): Promise<void> {
  while (!w.stop) {
    const s = sampleNow(w, t0, (await nonLoLinks(w.nseNs)).length);
    r.samples.push(s);
    const f = s.figures;
    progress(`soak ${ms(s.tMin)} min: RSS MiB nsmgr ${ms(f.nsmgr!.rss, 0)} fwd ${ms(f.forwarder!.rss, 0)} nsc-0 ${ms(f['nsc-0']!.rss, 0)}; fds nsmgr ${f.nsmgr!.fds} fwd ${f.forwarder!.fds}; churn ${r.churn.cycles} (${r.churn.failed} failed), interrupts ${r.interrupts.healed}/${r.interrupts.count} healed; NSE links ${s.nseLinks}`);
    const until = wallNow() + everyMs;
    while (!w.stop && wallNow() < until) await sleep(200);
  }
}

async function startWorld(o: SoakOptions): Promise<{ w: World; upMs: number }> {
  const dir = benchDir('soak');
  const mesh = await startMesh(dir);
  const nseNs = await addNs('nse');
  const nse = await startNse(mesh, nseNs, { NSM_SERVICE_NAMES: SERVICE, NSM_CIDR_PREFIX: '10.90.0.0/16', NSM_NAME: 'nse-soak' });
  const w: World = { mesh, nse, nseNs, nscs: [], stop: false };
  const t0 = wallNow();
  for (let i = 0; i * 50 < o.alive; i++) {
    const count = Math.min(50, o.alive - i * 50);
    const ns = await addNs('nsc');
    const urls = Array.from({ length: count }, (_, j) => `kernel://${SERVICE}/nsm-${j}`).join(',');
    const proc = startNsm(dir, `nsc-${i}`, ['nsc'], { NSM_CONNECT_TO: mesh.sock.nsmgr, NSM_NAME: `nsc-${i}`, NSM_NETWORK_SERVICES: urls }, ns);
    w.nscs.push({ proc, ns, log: new LogCounter(proc.logFile), count });
    await waitUntil(`soak NSC ${i}`, () => countAll(w.nscs.map((c) => c.log), 'connection established') >= i * 50 + count, 120_000);
  }
  return { w, upMs: wallNow() - t0 };
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  progress(`soak: ${o.minutes} min, ${o.alive} connections alive, churn + interrupts`);
  const { w, upMs } = await startWorld(o);
  const logs = () => w.nscs.map((c) => c.log);
  progress(`  ${countAll(logs(), 'connection established')}/${o.alive} up in ${ms(upMs / 1000)} s`);
  const r: SoakResult = {
    minutes: o.minutes, alive: o.alive, upMs, churn: { cycles: 0, failed: 0, linksLeft: 0 },
    interrupts: { count: 0, healed: 0, healMsP50: NaN, healMsMax: NaN, healEvents: 0 }, retries: 0, cpuPct: {}, samples: [], trends: [], flat: false, judged: o.minutes >= 10,
    leakCheck: { linksLeft: NaN, goneMs: NaN },
  };
  const healMs: number[] = [];
  const heals0 = countAll(logs(), 'heal detected');
  const pids: Record<string, number> = { registry: w.mesh.procs.registry.pid, nsmgr: w.mesh.procs.nsmgr.pid, forwarder: w.mesh.procs.forwarder.pid, nse: w.nse.pid };
  const ticks0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuTicks(p)]));
  const t0 = wallNow();
  const loops = [churnLoop(w, r), interruptLoop(w, r, healMs), sampleLoop(w, r, t0, o.sampleS * 1000)];
  await sleep(o.minutes * 60_000);
  w.stop = true;
  await Promise.all(loops);
  r.samples.push(sampleNow(w, t0, (await nonLoLinks(w.nseNs)).length));
  const wall = wallNow() - t0;
  for (const [k, p] of Object.entries(pids)) r.cpuPct[k] = (((cpuTicks(p) - ticks0[k]!) / CLK_TCK) * 100_000) / wall;
  const sorted = [...healMs].sort((a, b) => a - b);
  r.interrupts.healMsP50 = sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN;
  r.interrupts.healMsMax = sorted.at(-1) ?? NaN;
  r.interrupts.healEvents = countAll(logs(), 'heal detected') - heals0;
  r.retries += countAll(logs(), 'request failed; retrying');
  r.trends = trends(r.samples);
  r.flat = r.trends.every((t) => t.flat);
  r.leakCheck = await stopAll(w);
  progress(`  soak done: ${r.judged ? (r.flat ? 'flat' : 'NOT flat') : 'trends not judged (< 10 min)'}; ${r.leakCheck.linksLeft} links left after stopping the NSCs`);
  return r;
}

async function stopAll(w: World): Promise<SoakResult['leakCheck']> {
  const t0 = wallNow();
  await Promise.all(w.nscs.map((c) => c.proc.kill('SIGTERM')));
  await waitUntil('soak NSE netns empty', async () => (await nonLoLinks(w.nseNs)).length === 0, 60_000, 250);
  const leak = { linksLeft: (await nonLoLinks(w.nseNs)).length, goneMs: wallNow() - t0 };
  for (const c of w.nscs) await delNs(c.ns);
  await w.nse.kill();
  for (const c of ['forwarder', 'nsmgr', 'registry'] as const) await w.mesh.procs[c].kill();
  await delNs(w.nseNs);
  return leak;
}

export function soakTable(r: SoakResult): string {
  const comps = [...new Set(r.trends.map((t) => t.component))];
  const cell = (c: string, f: Trend['figure']) => {
    const t = r.trends.find((x) => x.component === c && x.figure === f)!;
    return `${ms(t.first, 0)} → ${ms(t.last, 0)} (${t.slopePerMin >= 0 ? '+' : ''}${ms(t.slopePerMin, 2)}/min${t.flat ? '' : ' NOT flat'})`;
  };
  return table(['component', 'RSS MiB first → last (slope, 2nd half)', 'open fds', 'child processes'], comps.map((c) => [c, cell(c, 'rss'), cell(c, 'fds'), cell(c, 'children')]));
}

export function soakSummary(r: SoakResult): string {
  return [
    `soak ${r.minutes} min, ${r.alive} connections alive (up in ${ms(r.upMs / 1000)} s); churn: ${r.churn.cycles} cycles of 10 connections (${r.churn.failed} not all up in 30 s), links left after close ${r.churn.linksLeft};`,
    `interrupts: ${r.interrupts.healed}/${r.interrupts.count} healed, link down → healed p50 ${ms(r.interrupts.healMsP50, 0)} ms, max ${ms(r.interrupts.healMsMax, 0)} ms; heal events ${r.interrupts.healEvents}; client retries ${r.retries};`,
    `CPU % over the run: ${Object.entries(r.cpuPct).map(([k, v]) => `${k} ${ms(v)}`).join(', ')};`,
    `trends ${r.judged ? (r.flat ? 'flat' : 'NOT flat') : 'not judged (a run under 10 min is a smoke run: its slopes are noise)'} (limits per minute: RSS ${LIMIT.rss} MiB, fds ${LIMIT.fds}, children ${LIMIT.children}); leak check: ${r.leakCheck.linksLeft} links left in the NSE netns ${ms(r.leakCheck.goneMs / 1000)} s after SIGTERM of the long-lived NSCs.`,
  ].join('\n');
}

if (process.argv[1]?.endsWith('/soak.js')) {
  runBench(async () => {
    const minutes = numArg('soak-minutes', 15, 0.5, 240);
    const o = { minutes, alive: numArg('alive', 200, 1, 2000), sampleS: numArg('sample', Math.max(5, (minutes * 60) / 60), 1, 3600) };
    console.log(machineInfo());
    const r = await runSoak(o);
    console.log(soakSummary(r));
    console.log(soakTable(r));
    const json = argValue('json', '');
    if (json) writeFileSync(json, JSON.stringify({ machine: machineInfo(), ...r }, null, 2));
  });
}
