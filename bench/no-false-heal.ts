/**
 * No false heal: the seed topology runs for D minutes with every core kept busy by other processes and
 * no interruption; at the end it prints the number of heal events the NSC logged (expected 0) next to
 * the probe settings, plus what an independent prober saw (the physical baseline: was the data plane
 * really up the whole time?).
 *
 *   node dist/bench/no-false-heal.js [--minutes 10] [--busy N (default nproc)]
 *
 * Topology as in heal-time: registry, nsmgr, forwarder, `nsm nse` (172.16.1.100/31) in nsmb-nse-*,
 * `nsm nsc` (kernel://dataplane-interrupt/nsm-1, default liveness settings unless set in this env) in
 * nsmb-nsc-*, NSC log level debug (so "heal suspect"/"heal cleared" — kernel faults seen but not
 * confirmed — are counted too). Load: N `node -e "for(;;){}"` children started after the connection
 * is established, killed by pid at the end. Prober: `ping -D -n -i 0.2 172.16.1.100` in the NSC netns.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import {
  startSeedClient, argValue, addNs, benchDir, loadavgNow, machineInfo, onCleanup, runBench, sleep, startMesh, startNse, stats, wallNow, ms } from './lib.js';

const MINUTES = Number(argValue('minutes', '10'));
const BUSY = Number(argValue('busy', String(cpus().length)));

runBench(async () => {
  const startLoad = loadavgNow();
  console.log(`no-false-heal benchmark: ${MINUTES} min, ${BUSY} busy-loop processes, no interruption`);
  console.log(machineInfo());
  const dir = benchDir('nfh');
  const mesh = await startMesh(dir);
  const nse = await addNs('nse');
  const nsc = await addNs('nsc');
  await startNse(mesh, nse, { NSM_CIDR_PREFIX: '172.16.1.100/31' });
  const { proc: nscProc, settings } = await startSeedClient(mesh, nsc, { NSM_LOG_LEVEL: 'debug' });
  const logFrom = nscProc.log().length;

  // Independent prober, 5 pings/s.
  const replies: Array<{ t: number; seq: number; rtt: number }> = [];
  const prober = spawn('ip', ['netns', 'exec', nsc.name, 'stdbuf', '-oL', 'ping', '-D', '-n', '-i', '0.2', '172.16.1.100'], { stdio: ['ignore', 'pipe', 'ignore'] });
  onCleanup(() => void (prober.exitCode === null && prober.signalCode === null && prober.kill('SIGKILL')));
  createInterface({ input: prober.stdout! }).on('line', (line) => {
    const m = /^\[(\d+\.\d+)\] \d+ bytes from [\d.]+: icmp_seq=(\d+) ttl=\d+ time=([\d.]+) ms/.exec(line);
    if (m) replies.push({ t: Number(m[1]) * 1000, seq: Number(m[2]), rtt: Number(m[3]) });
  });

  const busy: ChildProcess[] = [];
  for (let i = 0; i < BUSY; i++) {
    const c = spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' });
    busy.push(c);
  }
  onCleanup(() => {
    for (const c of busy) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
  const t0 = wallNow();
  const loads: string[] = [];
  const end = t0 + MINUTES * 60_000;
  while (wallNow() < end) {
    await sleep(Math.min(30_000, end - wallNow()));
    loads.push(loadavgNow().split(' ')[0]!);
    const heals = (nscProc.log().slice(logFrom).match(/"msg":"heal detected"/g) ?? []).length;
    process.stderr.write(`${((wallNow() - t0) / 60_000).toFixed(1)} min: heal detected ${heals}, loadavg ${loadavgNow()}\n`);
  }
  for (const c of busy) c.kill('SIGKILL');
  prober.kill('SIGKILL');
  const t1 = wallNow();

  const log = nscProc.log().slice(logFrom);
  const count = (msg: string) => (log.match(new RegExp(`"msg":"${msg}"`, 'g')) ?? []).length;
  const inWindow = replies.filter((r) => r.t >= t0 && r.t <= t1);
  const expected = Math.floor((t1 - t0) / 200);
  let maxGap = 0;
  for (let i = 1; i < inWindow.length; i++) maxGap = Math.max(maxGap, inWindow[i]!.t - inWindow[i - 1]!.t);
  const rtt = stats(inWindow.map((r) => r.rtt));
  const details = [...log.matchAll(/"detail":"([^"]*)"[^\n]*"msg":"heal (?:detected|suspect)"/g)].map((m) => m[1]);
  console.log('');
  console.log(`NSC probe settings: ${settings.join(', ')}`);
  console.log(`duration ${((t1 - t0) / 60_000).toFixed(2)} min with ${BUSY} busy loops on ${cpus().length} cpus; 1-min loadavg samples: ${loads.join(' ')}`);
  console.log(`heal events: "heal detected" ${count('heal detected')} (expected 0), "heal healed" ${count('heal healed')}, "heal failed" ${count('heal failed')}`);
  console.log(`unconfirmed kernel faults: "heal suspect" ${count('heal suspect')}, "heal cleared" ${count('heal cleared')}`);
  if (details.length) console.log(`details: ${[...new Set(details)].slice(0, 5).join(' | ')}`);
  console.log(`baseline (independent prober, ping -i 0.2): ${inWindow.length} replies of ~${expected} sent, longest gap ${ms(maxGap)} ms, RTT p50 ${rtt.p50.toFixed(3)} ms, p95 ${rtt.p95.toFixed(3)} ms, max ${rtt.max.toFixed(3)} ms`);
  console.log(`result: ${count('heal detected') === 0 ? 'PASS (no false heal)' : 'FAIL (false heals)'}`);
  console.log(`loadavg start ${startLoad}, end ${loadavgNow()}`);
});
