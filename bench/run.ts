/**
 * `npm run bench`: every benchmark of the project in one command (≤ 20 minutes on the 2-core machine),
 * progress on stderr, results in `bench/results/<UTC date-time>/` (or `--out DIR`):
 * `results.json` (everything), `results.md` (tables and targets met/missed), `chart.svg` (Request
 * latency, connections/s, RSS and CPU against N, each with its baseline of the same run), and the
 * output of each sub-benchmark (`<name>.txt`).
 *
 * Stages, each cleaned up before the next (bench/lib.ts `withScope`):
 * 1. kernel-raw (100 iterations); 2. memory (Node's floor, idle components, heap snapshots);
 * 3. scale, 50 at a time, for `--n` (default 10,100,300,1000; heap snapshots of nsmgr and forwarder at
 *    the largest N); 4. scale, all at once, for `--all-n` (default 1000; setup, pinging, memory, teardown);
 * 5. request-latency (small: N=50; an insecure and a secure mesh side by side: mTLS + tokens cost, secure /
 *    insecure p50 ≤ 1.2); 6. heal-time (3 per kind), then again on a secure mesh (`--secure`, no manual
 *    baseline); 7. no-false-heal (1 min, both cores busy);
 * 8. soak: `--soak-minutes` (default 2, a smoke run of the churn inside the 20-minute budget); `--soak`
 *    makes it the full 15 minutes (the whole run then takes ~35 min). `npm run bench:soak` runs the soak alone.
 * 9. remote (~2.5 min): a mesh of 2 nodes (`nsm up --nodes 2 --insecure`): Request → usable remote (VXLAN) vs
 *    local, iperf3 throughput of local / VXLAN / WireGuard connections vs the raw underlay, heal of a
 *    link-down remote vs local (bench/remote.ts: `--n 20 --reps 3 --seconds 5 --iperf-reps 3`).
 * `--only a,b` runs only the named stages (kernel-raw, memory, scale, scale-all, request-latency,
 * heal-time, no-false-heal, soak, remote). `--render DIR` writes results.md and chart.svg again from DIR/results.json.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chartSvg, type Panel } from './chart.js';
import { heapLine } from './heap.js';
import { argValue, hasFlag, loadavgNow, machineInfo, ms, numArg, onCleanup, progress, ROOT, runBench, wallNow, withScope } from './lib.js';
import { heapLines, memoryTable, runMemory, type MemoryResult } from './memory.js';
import { livenessIntervalMs, runScale, scaleTable, setupTimeoutMs, type ScaleResult } from './scale.js';
import { EMPTY_SUMMARY, parseSummary, remoteTargets, SUMMARY_PREFIX, type RemoteSummary } from './remote-figures.js';
import { runSoak, soakSummary, soakTable, type SoakResult } from './soak.js';

interface Target {
  target: string;
  /** Undefined: not run (its stage was left out or failed before the figure existed), or not judged. */
  met?: boolean;
  measured: string;
}

interface Results {
  machine: string;
  started: string;
  durationS: number;
  livenessIntervalMs: number;
  memory?: MemoryResult;
  scale: ScaleResult[];
  scaleAll: ScaleResult[];
  soak?: SoakResult;
  sub: Record<string, { exitCode: number | null; seconds: number; file: string }>;
  errors: Record<string, string>;
  targets: Target[];
  /** From request-latency's comparison: sequential usable p50 of each mesh (ms) and refresh p50 ratio. */
  secureCost?: { insecureP50: number; secureP50: number; refreshRatio: number };
  /** From the two heal-time runs: data-plane interruptions overall, p50 / p95 (ms). */
  healSecurity?: { insecure?: { p50: number; p95: number }; secure?: { p50: number; p95: number } };
  /** From remote.ts's summary line: remote vs local latency, heal and throughput figures. */
  remote?: RemoteSummary;
}

/** The mTLS-cost figures of request-latency's output (bench/request-latency.ts printComparison). */
function parseSecureCost(text: string): Results['secureCost'] {
  const m = /mTLS cost target [^\n]*\(p50 ratio [\d.]+: ([\d.]+) ms vs ([\d.]+) ms\)/.exec(text);
  if (!m) return undefined;
  const rf = /refresh on an established channel, p50 secure\/insecure: ([\d.]+|-)/.exec(text);
  return { secureP50: Number(m[1]), insecureP50: Number(m[2]), refreshRatio: Number(rf?.[1] ?? NaN) };
}

/** "data-plane interruptions overall …: p50 X ms, p95 Y ms" of a heal-time output. */
function parseHealOverall(text: string): { p50: number; p95: number } | undefined {
  const m = /data-plane interruptions overall[^:]*: p50 ([\d.]+) ms, p95 ([\d.]+) ms/.exec(text);
  return m ? { p50: Number(m[1]), p95: Number(m[2]) } : undefined;
}

/** Heal time on the secure mesh: not judged worse while its p50 stays within 20 % of the insecure run's (3 interruptions per kind are noisy). */
const HEAL_SECURE_SLACK = 1.2;

const STAGES = ['kernel-raw', 'memory', 'scale', 'scale-all', 'request-latency', 'heal-time', 'no-false-heal', 'soak', 'remote'] as const;

/** Runs another bench script as a child (its stdout to `<out>/<name>.txt`, its stderr shown as progress). */
async function sub(r: Results, out: string, name: string, args: string[], label = name): Promise<void> {
  const file = join(out, `${label}.txt`);
  const log = createWriteStream(file);
  const t0 = wallNow();
  progress(`${name} ${args.join(' ')}`);
  const c = spawn(process.execPath, [join(ROOT, `dist/bench/${name}.js`), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  c.stdout!.pipe(log);
  const exited = new Promise<number | null>((res) => c.once('exit', (code) => res(code)));
  onCleanup(async () => {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await exited;
  });
  const code = await exited;
  r.sub[label] = { exitCode: code, seconds: (wallNow() - t0) / 1000, file: `${label}.txt` };
  progress(`${label}: exit ${code} after ${ms((wallNow() - t0) / 1000, 0)} s`);
}

const at = (rs: ScaleResult[], n: number) => rs.find((x) => x.n === n);

function targets(r: Results): Target[] {
  const t: Target[] = [];
  const add = (target: string, met: boolean | undefined, measured: string) => t.push({ target, met: measured === 'not run' ? undefined : met, measured });
  const big = at(r.scale, 1000);
  const all = at(r.scaleAll, 1000);
  const small = at(r.scale, 10);
  add('1000 connections up and pinging', big && big.established >= 1000 && big.pinging >= 1000, big ? `${big.established} up, ${big.pinging} pinging` : 'not run');
  add('≥ 50 connections/s, 50 at a time (N=1000)', big && big.established >= 1000 && big.connPerSec >= 50, big ? `${ms(big.connPerSec)}/s (${big.established} up in ${ms(big.upMs / 1000)} s; raw kernel ${ms(big.raw?.connPerSec ?? NaN)}/s)` : 'not run');
  add('≥ 50 connections/s, 1000 at once', all && all.established >= 1000 && all.connPerSec >= 50, all ? `${ms(all.connPerSec)}/s (${all.established} up in ${ms(all.upMs / 1000)} s, ${all.retries} retries)` : 'not run');
  // JSON turns NaN into null: a figure that is not a finite number was not measured.
  const num = (v: number | null | undefined): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const l1 = num(big?.latency?.product.p50);
  const l0 = num(small?.latency?.product.p50);
  add('p50 Request latency at N=1000 ≤ 2× that at N=10', l1 !== undefined && l0 !== undefined ? l1 <= 2 * l0 : big?.latency ? false : undefined,
    big?.latency && small?.latency ? `${ms(l1 ?? NaN)} ms vs ${ms(l0 ?? NaN)} ms (${ms((l1 ?? NaN) / (l0 ?? NaN), 2)}×; raw ${ms(num(big.latency.raw.p50) ?? NaN)} / ${ms(num(small.latency.raw.p50) ?? NaN)} ms; ${big.latency.failures} Requests at N=1000 failed)` : 'not run');
  // A figure "at 1000 connections" taken with fewer up: over the bound it is missed anyway, under it is not judged.
  const upTo = (limit: number, v: number | undefined) => (v === undefined ? undefined : v > limit ? false : big!.established >= 1000 ? true : undefined);
  const few = big && big.established < 1000 ? ` (only ${big.established} up)` : '';
  const nscs = num(big?.cpuRestPct?.nscs);
  add(`liveness checking of 1000 connections (every ${livenessIntervalMs()} ms) ≤ 25 % of one core`, upTo(25, nscs), nscs !== undefined ? `${ms(nscs)} %${few} (raw: one ping process per connection ≈ ${ms(num(big?.raw?.pingCpuPctAtN) ?? NaN)} %)` : 'not run');
  const mesh = num(big?.cpuRestPct?.mesh);
  add('registry + nsmgr + forwarder CPU at rest ≈ 0 (≤ 1 % of one core, N=1000)', upTo(1, mesh), mesh !== undefined ? `${ms(mesh, 2)} % (registry ${ms(big!.cpuRestPct!.registry, 2)}, nsmgr ${ms(big!.cpuRestPct!.nsmgr, 2)}, forwarder ${ms(big!.cpuRestPct!.forwarder, 2)}; 30 s window, 10 ms ticks)${few}` : 'not run');
  const nsmgr = num(big?.rssMiB.nsmgr);
  add('nsmgr ≤ 200 MiB RSS at 1000 connections', upTo(200, nsmgr), nsmgr !== undefined ? `${ms(nsmgr, 0)} MiB${few}` : 'not run');
  const fwd = num(big?.rssMiB.forwarder);
  add('forwarder ≤ 200 MiB RSS at 1000 connections', upTo(200, fwd), fwd !== undefined ? `${ms(fwd, 0)} MiB${few}` : 'not run');
  const nsc = r.memory?.components.find((c) => c.name.startsWith('nsc'));
  const floor = r.memory?.floors[0];
  add('NSC process ≤ 80 MiB RSS idle with one connection', nsc !== undefined && nsc.rssMiB <= 80, nsc ? `${ms(nsc.rssMiB, 0)} MiB (empty node: ${ms(floor?.rssMiB ?? NaN, 0)} MiB)` : 'not run');
  add('SIGTERM of NSCs holding 1000 connections leaves no link within 60 s', big !== undefined && big.teardown.linksLeft === 0 && big.teardown.linksGoneMs <= 60_000, big ? `${big.teardown.linksLeft} left after ${ms(big.teardown.linksGoneMs / 1000)} s` : 'not run');
  const falseHeals = [...r.scale, ...r.scaleAll].reduce((s, x) => s + x.healsSetup + (Number.isFinite(x.healsRest) ? x.healsRest : 0), 0);
  add('no heal without a fault (all scale runs, setup and rest)', falseHeals === 0, r.scale.length + r.scaleAll.length ? `${falseHeals} heal events` : 'not run');
  const sc = r.secureCost;
  add(`mTLS + tokens cost: sequential Request → usable p50, secure / insecure mesh ≤ 1.2`, sc ? sc.secureP50 / sc.insecureP50 <= 1.2 : undefined,
    sc ? `${ms(sc.secureP50 / sc.insecureP50, 2)} (${ms(sc.secureP50)} ms vs ${ms(sc.insecureP50)} ms; refresh on an established channel ${ms(sc.refreshRatio, 2)})` : 'not run');
  const hi = r.healSecurity?.insecure;
  const hs = r.healSecurity?.secure;
  add(`heal time with mTLS + tokens no worse than insecure (data-plane p50 within ${Math.round((HEAL_SECURE_SLACK - 1) * 100)} %)`, hi && hs ? hs.p50 <= hi.p50 * HEAL_SECURE_SLACK : undefined,
    hi && hs ? `secure p50 ${ms(hs.p50)} / p95 ${ms(hs.p95)} ms vs insecure p50 ${ms(hi.p50)} / p95 ${ms(hi.p95)} ms` : 'not run');
  t.push(...remoteTargets(r.remote ?? EMPTY_SUMMARY));
  if (r.soak) {
    const leaked = r.soak.leakCheck.linksLeft + r.soak.churn.linksLeft;
    add('soak: no leaked link', leaked === 0, `${r.soak.leakCheck.linksLeft} left after the end, ${r.soak.churn.linksLeft} after churn closes`);
    const judged = r.soak.judged ?? r.soak.minutes >= 10;
    add('soak: RSS, fds, children flat (≥ 10 min)', judged ? r.soak.flat : undefined, judged ? (r.soak.flat ? 'flat' : 'not flat') : `${r.soak.minutes}-min smoke run, not judged`);
  }
  return t;
}

function chart(r: Results): string {
  const pts = (rs: ScaleResult[], f: (x: ScaleResult) => number | undefined): Array<[number, number]> => rs.map((x) => [x.n, f(x) ?? NaN]);
  const floor = r.memory?.floors[0]?.rssMiB ?? NaN;
  const grpc = r.memory?.floors[1]?.rssMiB ?? NaN;
  const ns = r.scale.map((x) => x.n);
  const flat = (v: number): Array<[number, number]> => ns.map((n) => [n, v]);
  const panels: Panel[] = [
    { title: 'Request latency at N (p50, to usable)', yLabel: 'ms', series: [
      { name: 'nsm-ts Request', color: '#c0392b', points: pts(r.scale, (x) => x.latency?.product.p50) },
      { name: 'raw: 2 ip -batch + usable check', color: '#7f8c8d', dashed: true, points: pts(r.scale, (x) => x.latency?.raw.p50) },
    ] },
    { title: 'Connections per second', yLabel: 'connections/s', series: [
      { name: 'nsm-ts, 50 at a time', color: '#2980b9', points: pts(r.scale, (x) => x.connPerSec) },
      { name: 'nsm-ts, all at once', color: '#8e44ad', points: pts(r.scaleAll, (x) => x.connPerSec) },
      { name: 'raw kernel (10 at a time)', color: '#7f8c8d', dashed: true, points: pts(r.scale, (x) => x.raw?.connPerSec) },
      { name: 'target 50/s', color: '#27ae60', dashed: true, points: flat(50) },
    ] },
    { title: 'RSS at N', yLabel: 'MiB', series: [
      { name: 'nsmgr', color: '#c0392b', points: pts(r.scale, (x) => x.rssMiB.nsmgr) },
      { name: 'forwarder', color: '#2980b9', points: pts(r.scale, (x) => x.rssMiB.forwarder) },
      { name: 'registry', color: '#d35400', points: pts(r.scale, (x) => x.rssMiB.registry) },
      { name: 'NSC process (max)', color: '#8e44ad', points: pts(r.scale, (x) => x.rssMiB.nscMax) },
      { name: 'node + grpc-js, nice-grpc, pino', color: '#7f8c8d', dashed: true, points: flat(grpc) },
      { name: 'empty node', color: '#bdc3c7', dashed: true, points: flat(floor) },
      { name: 'target 200 MiB', color: '#27ae60', dashed: true, points: flat(200) },
    ] },
    { title: 'CPU at rest (% of one core, children included)', yLabel: '% of one core', series: [
      { name: 'NSC processes (liveness checking)', color: '#8e44ad', points: pts(r.scale, (x) => x.cpuRestPct?.nscs) },
      { name: 'registry + nsmgr + forwarder', color: '#c0392b', points: pts(r.scale, (x) => x.cpuRestPct?.mesh) },
      { name: 'raw: one ping process per connection', color: '#7f8c8d', dashed: true, points: pts(r.scale, (x) => x.raw?.pingCpuPctAtN) },
      { name: 'target 25 %', color: '#27ae60', dashed: true, points: flat(25) },
    ] },
  ];
  return chartSvg(panels, `nsm-ts bench ${r.started} — ${r.machine}`);
}

/** A sub-benchmark's output without its machine-read summary line (remote.ts; in results.json instead). */
const withoutSummary = (text: string): string => text.split('\n').filter((l) => !l.startsWith(SUMMARY_PREFIX)).join('\n');

function markdown(r: Results, dir: string): string {
  const out = [`# nsm-ts bench ${r.started}`, '', r.machine, '', `Duration ${ms(r.durationS / 60)} min. Liveness interval ${r.livenessIntervalMs} ms (default).`, '', '## Targets', ''];
  const verdict = (t: Target) => (t.met === undefined ? (t.measured === 'not run' ? 'not run' : 'not judged') : t.met ? 'met' : 'MISSED');
  out.push(...r.targets.map((t) => `- **${verdict(t)}** — ${t.target}: ${t.measured}`), '');
  if (r.scale.length || r.scaleAll.length) out.push('## Scale (N/50 NSC processes × 50 connections, one NSE)', '', scaleTable([...r.scale, ...r.scaleAll]), '', ...setupCpuLines([...r.scale, ...r.scaleAll]), '![chart](chart.svg)', '');
  if (r.memory) {
    out.push('## Memory', '', memoryTable([...r.memory.floors, ...r.memory.components]), '', ...heapLines(r.memory.components), '');
    for (const x of r.scale.filter((s) => s.heap)) out.push(`At N=${x.n}:`, ...Object.entries(x.heap!).map(([k, h]) => `- ${k} (RSS ${ms(x.rssMiB[k as 'nsmgr'], 0)} MiB): ${heapLine(h)}`), '');
  }
  if (r.soak) out.push('## Soak', '', soakSummary(r.soak), '', soakTable(r.soak), '');
  for (const [name, s] of Object.entries(r.sub)) out.push(`## ${name} (exit ${s.exitCode}, ${ms(s.seconds, 0)} s; output in ${s.file})`, '', withoutSummary(readFileSync(join(dir, s.file), 'utf8')).trim(), '');
  for (const [stage, e] of Object.entries(r.errors)) out.push(`**${stage} failed:** ${e}`, '');
  return out.join('\n');
}

/** A comma list of N from `--name`, each 1…5000; exits 2 naming the flag otherwise. */
function nList(name: string, dflt: string): number[] {
  const raw = argValue(name, dflt);
  const ns = raw.split(',').filter(Boolean).map(Number);
  if (ns.some((n) => !Number.isInteger(n) || n < 1 || n > 5000)) {
    process.stderr.write(`--${name} ${raw}: must be a comma list of whole numbers from 1 to 5000\n`);
    process.exit(2);
  }
  return ns;
}

async function stage(r: Results, name: string, only: Set<string>, fn: () => Promise<void>): Promise<void> {
  if (only.size && !only.has(name)) return;
  try {
    await withScope(fn);
  } catch (err) {
    r.errors[name] = (err as Error).stack ?? String(err);
    progress(`${name} failed: ${(err as Error).message}`);
  }
}

/** `--render DIR`: writes results.md and chart.svg again from DIR/results.json (after a change of the report). */
function render(dir: string): void {
  const r = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Results;
  r.targets = targets(r);
  writeFileSync(join(dir, 'chart.svg'), chart(r));
  writeFileSync(join(dir, 'results.md'), markdown(r, dir));
  console.log(`written: ${join(dir, 'results.md')}, chart.svg`);
}

runBench(async () => {
  if (argValue('render', '')) return render(argValue('render', ''));
  const t0 = wallNow();
  const started = new Date().toISOString().slice(0, 16).replace(':', '-') + 'Z';
  const out = argValue('out', join(ROOT, 'bench/results', started));
  mkdirSync(out, { recursive: true });
  const ns = nList('n', '10,100,300,1000');
  const allNs = nList('all-n', '1000');
  const soakMinutes = hasFlag('soak') ? 15 : numArg('soak-minutes', 2, 0.5, 240);
  const only = new Set(argValue('only', '').split(',').filter(Boolean));
  for (const s of only) if (!(STAGES as readonly string[]).includes(s)) throw new Error(`--only ${s}: not a stage (${STAGES.join(', ')})`);
  const r: Results = { machine: machineInfo(), started, durationS: 0, livenessIntervalMs: livenessIntervalMs(), scale: [], scaleAll: [], sub: {}, errors: {}, targets: [] };
  progress(`bench → ${out}; ${r.machine}`);
  await stage(r, 'kernel-raw', only, () => sub(r, out, 'kernel-raw', ['100']));
  await stage(r, 'memory', only, async () => void (r.memory = await runMemory()));
  for (const n of ns) {
    await stage(r, 'scale', only, async () => void r.scale.push(await runScale({ n, mode: 'batch', perProc: 50, timeoutMs: setupTimeoutMs(n), restS: 30, latencySamples: 20, heapSnapshot: n === Math.max(...ns), setupOnly: false })));
  }
  for (const n of allNs) {
    await stage(r, 'scale-all', only, async () => void r.scaleAll.push(await runScale({ n, mode: 'all', perProc: 50, timeoutMs: setupTimeoutMs(n), restS: 0, latencySamples: 0, heapSnapshot: false, setupOnly: true })));
  }
  await stage(r, 'request-latency', only, async () => {
    await sub(r, out, 'request-latency', ['--n', '50', '--concurrency', '10', '--process-n', '5', '--refreshes', '2']);
    r.secureCost = parseSecureCost(readFileSync(join(out, 'request-latency.txt'), 'utf8'));
  });
  await stage(r, 'heal-time', only, async () => {
    await sub(r, out, 'heal-time', ['--reps', '3', '--manual-reps', '2']);
    await sub(r, out, 'heal-time', ['--reps', '3', '--manual-reps', '0', '--secure'], 'heal-time-secure');
    const overall = (f: string) => parseHealOverall(readFileSync(join(out, f), 'utf8'));
    r.healSecurity = { insecure: overall('heal-time.txt'), secure: overall('heal-time-secure.txt') };
  });
  await stage(r, 'no-false-heal', only, () => sub(r, out, 'no-false-heal', ['--minutes', '1']));
  await stage(r, 'soak', only, async () => void (r.soak = await runSoak({ minutes: soakMinutes, alive: 200, sampleS: Math.max(5, soakMinutes) })));
  await stage(r, 'remote', only, async () => {
    await sub(r, out, 'remote', ['--n', '20', '--reps', '3', '--seconds', '5', '--iperf-reps', '3']);
    r.remote = parseSummary(readFileSync(join(out, 'remote.txt'), 'utf8'));
  });
  r.durationS = (wallNow() - t0) / 1000;
  r.targets = targets(r);
  writeFileSync(join(out, 'results.json'), JSON.stringify(r, null, 2));
  writeFileSync(join(out, 'chart.svg'), chart(r));
  const md = markdown(r, out);
  writeFileSync(join(out, 'results.md'), md);
  console.log(md);
  console.log(`\nwritten: ${join(out, 'results.json')}, results.md, chart.svg (${ms(r.durationS / 60)} min, loadavg ${loadavgNow()})`);
});

/** Where the CPU of setting up connections goes, per connection and process tree, for each run. */
function setupCpuLines(rs: ScaleResult[]): string[] {
  const lines = rs
    .filter((x) => x.setupCpuMsPerConn)
    .map((x) => {
      const c = x.setupCpuMsPerConn;
      const total = c.registry + c.nsmgr + c.forwarder + c.nse + c.nscs;
      return `- N=${x.n} ${x.mode}: ${ms(total)} ms of CPU per connection — NSC processes ${ms(c.nscs)}, forwarder ${ms(c.forwarder)} (with its ip commands), nsmgr ${ms(c.nsmgr)}, NSE ${ms(c.nse)}, registry ${ms(c.registry)}`;
    });
  return lines.length ? ['Setup CPU (process trees, children included):', '', ...lines, ''] : [];
}

