/**
 * Heal time: R interruptions (default 20) of each kind on the seed topology, each timed from the
 * interruption to the first reply of an independent prober, with the physical baselines measured in the
 * same run (raw ping RTT; the same fault repaired by hand at once; raw veth re-creation).
 *
 *   node dist/bench/heal-time.js [--reps 20] [--manual-reps 10] [--settle 1500] [--kinds a,b,…] [--no-restarts] [--secure]
 *
 * `--secure`: every process of the topology runs with mTLS and ES256 path tokens (an SVID each from a
 * Workload API of the bench, bench/secure.ts) instead of NSM_INSECURE=true; run it once with and once
 * without to compare heal times.
 *
 * Topology (all real processes): registry, nsmgr, forwarder; `nsm nse` in netns nsmb-nse-* with
 * NSM_CIDR_PREFIX=172.16.1.100/31 and service dataplane-interrupt; `nsm nsc` in netns nsmb-nsc-* with
 * NSM_NETWORK_SERVICES=kernel://dataplane-interrupt/nsm-1 and the default liveness settings (or those in
 * this process's env: NSM_LIVENESS_CHECK_INTERVAL/TIMEOUT, NSM_HEAL_CONFIRMATIONS are passed through).
 * Prober: `ping -D -n -i 0.01 172.16.1.100` inside the NSC netns (its own process, not the NSC's probe).
 *
 * Kinds: nsc-link-down, nsc-link-del, nsc-addr-flush, nsc-route-del, nse-link-down (data plane);
 * nsmgr-kill, forwarder-kill (SIGKILL, restarted by the bench at once; control plane).
 * Per interruption: t0 just before the `ip` command; "heal time" = first prober reply received after
 * the command returned, minus t0. Between interruptions: wait until healed, then `--settle` ms of
 * uninterrupted replies. Heal events (NSC log lines "heal detected") are counted per interruption.
 */
import type { TestNetns } from '../src/dataplane/linux/testenv.js';
import { rawCreate } from './kernel-raw.js';
import { Prober } from './prober.js';
import { BenchIdentities } from './secure.js';
import {
  startSeedClient,
  addNs, argValue, benchDir, delNs, execIn, hasFlag, loadavgNow, machineInfo, ms, nonLoLinks, routes, runBench, sh, sleep, startMesh, startNse,
  stats, table, waitFor, wallNow, linkView, type Mesh, type Ns, type Proc,
} from './lib.js';

const REPS = Number(argValue('reps', '20'));
const MANUAL_REPS = Number(argValue('manual-reps', '10'));
const SETTLE = Number(argValue('settle', '1500'));
const NSE_ADDR = '172.16.1.100';
const DP_KINDS = ['nsc-link-down', 'nsc-link-del', 'nsc-addr-flush', 'nsc-route-del', 'nse-link-down'] as const;
const CP_KINDS = ['nsmgr-kill', 'forwarder-kill'] as const;
type Kind = (typeof DP_KINDS)[number] | (typeof CP_KINDS)[number];
const KINDS: Kind[] = (argValue('kinds', '') ? argValue('kinds', '').split(',') : [...DP_KINDS, ...(hasFlag('no-restarts') ? [] : CP_KINDS)]) as Kind[];
const HEAL_TIMEOUT = 15_000;
/** Manual-repair hold: just under the NSC's kernel-fault confirmation (3 × 200 ms checks = 400 ms), so it does not heal. */
const HOLD = Number(argValue('hold', '300'));
const SECURE = hasFlag('secure');

// ---- NSC log -------------------------------------------------------------------------------------------

interface HealLog {
  detected: Array<{ at: number; cause: string; detail: string }>;
  healed: Array<{ at: number; ms: number; action: string; cause: string }>;
  failed: number;
}

function healLog(text: string): HealLog {
  const out: HealLog = { detected: [], healed: [], failed: 0 };
  for (const line of text.split('\n')) {
    if (!line.includes('"msg":"heal ')) continue;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (j.msg === 'heal detected') out.detected.push({ at: j.at as number, cause: String(j.cause), detail: String(j.detail) });
    else if (j.msg === 'heal healed') out.healed.push({ at: j.at as number, ms: j.ms as number, action: String(j.action), cause: String(j.cause) });
    else if (j.msg === 'heal failed') out.failed++;
  }
  return out;
}

// ---- interruptions and repairs -------------------------------------------------------------------------

interface Topo {
  mesh: Mesh;
  nse: Ns;
  nsc: Ns;
  nscProc: Proc;
  prober: Prober;
}

async function nseIf(t: Topo): Promise<string> {
  const l = await nonLoLinks(t.nse);
  if (l.length !== 1) throw new Error(`expected one link in the NSE netns, found: ${l.join(', ') || 'none'}`);
  return l[0]!;
}

async function interrupt(t: Topo, kind: Kind, nseDev: string): Promise<void> {
  const ipn = (ns: Ns, ...args: string[]) => sh('ip', ['-n', ns.name, ...args]);
  switch (kind) {
    case 'nsc-link-down':
      return void (await ipn(t.nsc, 'link', 'set', 'dev', 'nsm-1', 'down'));
    case 'nsc-link-del':
      return void (await ipn(t.nsc, 'link', 'del', 'dev', 'nsm-1'));
    case 'nsc-addr-flush':
      return void (await ipn(t.nsc, 'addr', 'flush', 'dev', 'nsm-1'));
    case 'nsc-route-del': {
      const r = (await routes(t.nsc)).filter((x) => x.dev === 'nsm-1' && (x.dst === NSE_ADDR || x.dst === `${NSE_ADDR}/32` || x.dst === '172.16.1.100/31'));
      if (r.length === 0) throw new Error('no route to the NSE on nsm-1 to delete');
      for (const x of r) await ipn(t.nsc, 'route', 'del', x.dst, 'dev', 'nsm-1');
      return;
    }
    case 'nse-link-down':
      return void (await ipn(t.nse, 'link', 'set', 'dev', nseDev, 'down'));
    case 'nsmgr-kill':
      return t.mesh.restart('nsmgr', 'SIGKILL');
    case 'forwarder-kill':
      return t.mesh.restart('forwarder', 'SIGKILL');
  }
}

/** One `ip -batch` that restores a side's link, addresses and link routes as snapshotted. */
async function repairBatch(ns: Ns, dev: string): Promise<string> {
  const v = await linkView(ns, dev);
  const lines = [`link set dev ${dev} up`];
  for (const a of v?.addr_info ?? []) if (a.scope !== 'link' && a.family === 'inet') lines.push(`addr replace ${a.local}/${a.prefixlen} dev ${dev}`);
  for (const r of await routes(ns)) if (r.dev === dev) lines.push(`route replace ${r.dst} dev ${dev}${r.scope ? ` scope ${r.scope}` : ''}${r.prefsrc ? ` src ${r.prefsrc}` : ''}`);
  return lines.join('\n') + '\n';
}

interface Result {
  kind: Kind;
  healMs: number;
  gapMs: number;
  healedLogMs: number;
  detectMs: number;
  detected: number;
  healed: number;
  failed: number;
  actions: string[];
  restartMs?: number;
}

async function waitSteady(t: Topo, windowMs: number, timeoutMs = 20_000): Promise<void> {
  await waitFor(`prober steady for ${windowMs} ms`, () => t.prober.steady(windowMs), timeoutMs, 20);
}

/** Stable = no new heal log line for SETTLE ms and the prober steady over SETTLE ms (at most 20 s). */
async function waitQuiet(t: Topo, logFrom: number): Promise<void> {
  const until = Date.now() + 20_000;
  for (;;) {
    const before = (t.nscProc.log().slice(logFrom).match(/"msg":"heal /g) ?? []).length;
    await sleep(SETTLE);
    const after = (t.nscProc.log().slice(logFrom).match(/"msg":"heal /g) ?? []).length;
    if ((after === before && t.prober.steady(SETTLE)) || Date.now() > until) return;
  }
}

async function oneInterruption(t: Topo, kind: Kind): Promise<Result> {
  await waitSteady(t, SETTLE);
  const nseDev = await nseIf(t);
  const logFrom = t.nscProc.log().length;
  const t0 = wallNow();
  await interrupt(t, kind, nseDev);
  const t1 = wallNow();
  const dataPlane = (DP_KINDS as readonly string[]).includes(kind);
  let healMs = NaN;
  if (dataPlane) {
    // Verify the interruption took effect: there must be no reply between t1 + 30 ms and the heal.
    const r = await waitFor('first reply after the interruption', () => t.prober.firstAfter(t1 + 0.5), HEAL_TIMEOUT, 2).catch(() => undefined);
    if (r) healMs = r.t - t0;
  }
  // Wait for the NSC's heal to finish (data plane) or to happen at all (control plane), then settle.
  await waitFor('heal healed', () => /"msg":"heal healed"/.test(t.nscProc.log().slice(logFrom)), HEAL_TIMEOUT, 10).catch(() => undefined);
  await waitQuiet(t, logFrom);
  const h = healLog(t.nscProc.log().slice(logFrom));
  const end = wallNow();
  return {
    kind,
    healMs,
    gapMs: t.prober.maxGap(t0, end),
    healedLogMs: h.healed[0] ? h.healed[0].at - t0 : NaN,
    detectMs: h.detected[0] ? h.detected[0].at - t0 : NaN,
    detected: h.detected.length,
    healed: h.healed.length,
    failed: h.failed,
    actions: h.healed.map((x) => x.action),
    restartMs: dataPlane ? undefined : t1 - t0,
  };
}

/** The same fault repaired by hand at once: interruption, then one `ip -batch` with the snapshot. */
async function manualRepair(t: Topo, kind: Kind, holdMs: number): Promise<{ repairExecMs: number; toReplyMs: number; healEvents: number }> {
  await waitSteady(t, SETTLE);
  const nseDev = await nseIf(t);
  const nscSide = kind !== 'nse-link-down';
  const ns = nscSide ? t.nsc : t.nse;
  const dev = nscSide ? 'nsm-1' : nseDev;
  const batch = await repairBatch(ns, dev);
  const logFrom = t.nscProc.log().length;
  const t0 = wallNow();
  await interrupt(t, kind, nseDev);
  if (holdMs > 0) await sleep(holdMs);
  const t1 = wallNow();
  await execIn(ns.path, ['ip', '-batch', '-'], batch);
  const t2 = wallNow();
  const r = await waitFor('first reply after the manual repair', () => t.prober.firstAfter(t2), 5000, 2);
  await waitQuiet(t, logFrom);
  return { repairExecMs: t2 - t1, toReplyMs: r.t - t0, healEvents: healLog(t.nscProc.log().slice(logFrom)).detected.length };
}

/** Link deletion by hand cannot be undone on the live connection: time a raw veth pair + first ping in a separate netns pair. */
async function rawRecreate(): Promise<number> {
  const a = await addNs('ra');
  const b = await addNs('rb');
  try {
    const t0 = wallNow();
    await rawCreate(a as unknown as TestNetns, b as unknown as TestNetns);
    await execIn(a.path, ['ping', '-n', '-q', '-c', '1', '-i', '0.01', '-w', '2', NSE_ADDR]);
    return wallNow() - t0;
  } finally {
    await delNs(a);
    await delNs(b);
  }
}

runBench(async () => {
  const startLoad = loadavgNow();
  console.log(`heal-time benchmark: ${REPS} interruptions per kind (${KINDS.join(', ')}), manual baseline ${MANUAL_REPS} per kind, settle ${SETTLE} ms`);
  console.log(`security: ${SECURE ? 'mTLS + ES256 path tokens (SVIDs from the bench\'s Workload API, trust domain nsm.bench)' : 'NSM_INSECURE=true (plaintext, HS256 tokens)'}`);
  console.log(machineInfo());
  const dir = benchDir('heal');
  const mesh = await startMesh(dir, {}, {}, SECURE ? new BenchIdentities(dir) : undefined);
  const nse = await addNs('nse');
  const nsc = await addNs('nsc');
  await startNse(mesh, nse, { NSM_CIDR_PREFIX: '172.16.1.100/31' });
  const { proc: nscProc, settings } = await startSeedClient(mesh, nsc);
  console.log(`NSC probe settings: ${settings.join(', ')}`);
  const prober = new Prober(nsc, NSE_ADDR);
  const t: Topo = { mesh, nse, nsc, nscProc, prober };
  await waitSteady(t, SETTLE);
  const baselineFrom = wallNow() - SETTLE;

  // Baselines first (manual repairs), then the interruptions, round-robin over the kinds.
  const manual: Record<string, Array<{ repairExecMs: number; toReplyMs: number; healEvents: number }>> = {};
  for (const kind of KINDS.filter((k) => k !== 'nsc-link-del' && (DP_KINDS as readonly string[]).includes(k))) {
    for (const hold of [0, HOLD]) {
      const key = `${kind}, repaired ${hold ? `${hold} ms after the fault` : 'at once'}`;
      manual[key] = [];
      for (let i = 0; i < MANUAL_REPS; i++) manual[key]!.push(await manualRepair(t, kind, hold));
    }
  }
  const recreate: number[] = [];
  if (KINDS.includes('nsc-link-del')) for (let i = 0; i < MANUAL_REPS; i++) recreate.push(await rawRecreate());

  const results: Result[] = [];
  const baselineTo = wallNow();
  for (let i = 0; i < REPS; i++) {
    for (const kind of KINDS) {
      const r = await oneInterruption(t, kind);
      results.push(r);
      process.stderr.write(`${kind} #${i + 1}: heal ${ms(r.healMs)} ms, detected ${ms(r.detectMs)} ms, healed(log) ${ms(r.healedLogMs)} ms, gap ${ms(r.gapMs)} ms, events ${r.detected}, ${r.actions.join('/')}\n`);
    }
  }

  const rtt = stats(prober.replies.filter((r) => r.t >= baselineFrom && r.t <= baselineTo).map((r) => r.rtt));
  console.log('');
  console.log(`prober: ping -D -i 0.01 ${NSE_ADDR} in the NSC netns; ${prober.replies.length} replies, ${prober.restarts} prober restarts`);
  console.log(`baseline raw ping RTT through the connection (during the manual phase): p50 ${rtt.p50.toFixed(3)} ms, p95 ${rtt.p95.toFixed(3)} ms (n=${rtt.n})`);
  console.log('');
  console.log('Heal: t0 = just before the interrupting command; "to reply" = first prober reply after the command');
  console.log('returned; "detected"/"healed" = the NSC\'s own log events (`at`) relative to t0; all in ms.');
  const rows: Array<Array<string | number>> = [];
  for (const kind of KINDS) {
    const rs = results.filter((r) => r.kind === kind);
    const dp = (DP_KINDS as readonly string[]).includes(kind);
    const reply = stats(rs.map((r) => r.healMs).filter(Number.isFinite));
    const det = stats(rs.map((r) => r.detectMs).filter(Number.isFinite));
    const hl = stats(rs.map((r) => r.healedLogMs).filter(Number.isFinite));
    const gap = stats(rs.map((r) => r.gapMs));
    const ev = rs.map((r) => r.detected);
    const evs = `${Math.min(...ev)}–${Math.max(...ev)} (exactly 1: ${ev.filter((x) => x === 1).length}/${rs.length})`;
    const actions = Object.entries(rs.flatMap((r) => r.actions).reduce<Record<string, number>>((a, x) => ((a[x] = (a[x] ?? 0) + 1), a), {})).map(([k, v]) => `${k} ${v}`).join(', ');
    rows.push([
      kind,
      rs.length,
      dp ? `${ms(reply.p50)} / ${ms(reply.p95)} / ${ms(reply.max)}${reply.n < rs.length ? ` (${rs.length - reply.n} never)` : ''}` : `gap max ${ms(gap.max)}`,
      `${ms(det.p50)} / ${ms(det.p95)}`,
      `${ms(hl.p50)} / ${ms(hl.p95)}`,
      evs,
      actions || 'none',
    ]);
  }
  console.log(table(['interruption', 'n', 'to reply p50 / p95 / max', 'detected p50 / p95', 'healed p50 / p95', 'heal events per interruption', 'actions'], rows));
  const cpRestart = results.filter((r) => r.restartMs !== undefined);
  if (cpRestart.length) {
    for (const kind of CP_KINDS.filter((k) => KINDS.includes(k))) {
      const s = stats(cpRestart.filter((r) => r.kind === kind).map((r) => r.restartMs!));
      console.log(`${kind}: SIGKILL → restarted component logs "ready": p50 ${ms(s.p50)} ms, p95 ${ms(s.p95)} ms (part of the figures above)`);
    }
  }
  console.log('');
  console.log('Baseline: the same fault repaired by hand (interruption, then — at once, or after a hold just under the');
  console.log('NSC\'s confirmation time — one `ip -batch` restoring link up, addresses and link routes from a snapshot); ms.');
  console.log('"interruption → reply" includes the hold.');
  const mrows: Array<Array<string | number>> = [];
  for (const [kind, xs] of Object.entries(manual)) {
    const ex = stats(xs.map((x) => x.repairExecMs));
    const to = stats(xs.map((x) => x.toReplyMs));
    mrows.push([kind, xs.length, `${ms(ex.p50)} / ${ms(ex.p95)}`, `${ms(to.p50)} / ${ms(to.p95)}`, xs.reduce((a, x) => a + x.healEvents, 0)]);
  }
  if (recreate.length) {
    const s = stats(recreate);
    mrows.push(['nsc-link-del (raw veth re-create + 1st ping, separate netns pair)', s.n, `${ms(s.p50)} / ${ms(s.p95)}`, '', '']);
  }
  console.log(table(['fault repaired by hand', 'n', 'repair exec p50 / p95', 'interruption → reply p50 / p95', 'NSC heal events'], mrows));
  const dpAll = stats(results.filter((r) => (DP_KINDS as readonly string[]).includes(r.kind)).map((r) => r.healMs).filter(Number.isFinite));
  console.log('');
  console.log(`data-plane interruptions overall${SECURE ? ' (secure)' : ''}: p50 ${ms(dpAll.p50)} ms, p95 ${ms(dpAll.p95)} ms, max ${ms(dpAll.max)} ms — target p95 ≤ 1000 ms: ${dpAll.p95 <= 1000 ? 'MET' : 'NOT MET'}`);
  console.log(`loadavg start ${startLoad}, end ${loadavgNow()}`);
  void nse;
});
