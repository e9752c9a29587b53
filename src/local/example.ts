/**
 * `nsm example dataplane-interrupt`: the upstream example (shared seed), step for step, on the local
 * mesh. Each step prints what it runs (the local twin of the seed's kubectl step), a progress indicator,
 * its result and its duration; the end prints when the interruption was detected and healed, how many
 * pings were lost and a short timeline of replies. Exit code 0 only if every step passed. Cleans up
 * after itself — also on Ctrl-C or a failing step — unless `keep` is set.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '../core/errors.js';
import { down, requireRoot, requireTools, up, type MeshContext } from './mesh.js';
import { ip, netnsExists } from './netns.js';
import { readStatusFile, runPod, stopPod } from './pods.js';
import { readState } from './state.js';
import { findEndpoints } from './grpc.js';

export const NSE_POD = 'nse-kernel';
export const NSC_POD = 'nsc-kernel';
export const NSE_ADDR = '172.16.1.100';
export const NSC_ADDR = '172.16.1.101';

export interface ExampleOptions {
  readonly keep: boolean;
  readonly netsvcYaml: string;
  readonly entry: string;
  readonly out: NodeJS.WriteStream;
}

/** The seed's pinger: stops at the first missing ping or read timeout (busybox sh and ping). */
export const SEED_PINGER_SCRIPT = `
  PINGER_PATH=$1; rm -f "$PINGER_PATH"
  seq=0
  ping -i 0.2 ${NSE_ADDR} | while :; do
    read -t 1 line || { echo ping timeout; touch $PINGER_PATH; break; }
    seq1=$(echo $line | sed -n "s/.* seq=\\([0-9]\\+\\) .*/\\1/p")
    [ "$seq1" ] || continue
    [ "$seq" -eq "$seq1" ] || { echo missing $((seq1 - seq)) pings; touch $PINGER_PATH; break; }
    seq=$((seq1+1))
  done
`;

class StepFailed extends Error {
  override name = 'StepFailed';
}

/** Prints steps with a spinner (on a terminal) or plain lines, and their durations. */
class Steps {
  #n = 0;
  readonly results: Array<{ title: string; ok: boolean; ms: number }> = [];
  constructor(private readonly out: NodeJS.WriteStream) {}

  line(s = ''): void {
    this.out.write(`${s}\n`);
  }

  async run<T>(title: string, cmd: string | undefined, fn: () => Promise<{ value: T; result: string }>): Promise<T> {
    const n = ++this.#n;
    const head = `[${String(n).padStart(2)}] ${title}`;
    this.line(head);
    if (cmd) this.line(`     $ ${cmd}`);
    const t0 = performance.now();
    const tty = this.out.isTTY === true;
    const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let f = 0;
    const spin = tty ? setInterval(() => this.out.write(`\r     ${frames[f++ % frames.length]} ${((performance.now() - t0) / 1000).toFixed(1)} s`), 100) : undefined;
    const clear = () => {
      if (spin) {
        clearInterval(spin);
        this.out.write('\r\x1b[2K');
      }
    };
    try {
      const { value, result } = await fn();
      clear();
      const ms = performance.now() - t0;
      this.results.push({ title, ok: true, ms });
      this.line(`     ✔ ${result} (${fmtMs(ms)})`);
      return value;
    } catch (err) {
      clear();
      const ms = performance.now() - t0;
      this.results.push({ title, ok: false, ms });
      this.line(`     ✖ ${errorMessage(err)} (${fmtMs(ms)})`);
      throw new StepFailed(`step ${n} failed: ${title}`);
    }
  }
}

const fmtMs = (ms: number) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pingOk(ns: string, addr: string, count: number): Promise<{ ok: boolean; summary: string }> {
  try {
    const out = await ip(['netns', 'exec', ns, 'ping', '-n', '-c', String(count), '-i', '0.2', '-W', '1', addr]);
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    return { ok: true, summary: m ? `${m[2]}/${m[1]} replies` : 'replies received' };
  } catch (err) {
    return { ok: false, summary: errorMessage(err).split('\n').find((l) => l.includes('transmitted')) ?? 'no reply' };
  }
}

function busyboxBin(dir: string): string {
  const bin = join(dir, 'busybox-bin');
  mkdirSync(bin, { recursive: true });
  for (const applet of ['sh', 'ping', 'sed', 'touch', 'rm', 'echo', 'test', '[']) {
    if (!existsSync(join(bin, applet))) symlinkSync('/bin/busybox', join(bin, applet));
  }
  return bin;
}

interface Reply {
  t: number;
  seq: number;
}

/** An independent `ping -i 0.2 -D` whose replies (with arrival times) make the timeline. */
function startCounter(ns: string): { child: ChildProcess; replies: Reply[]; stop(): Promise<{ sent: number; received: number }> } {
  const child = spawn('ip', ['netns', 'exec', ns, 'ping', '-n', '-D', '-i', '0.2', NSE_ADDR], { stdio: ['ignore', 'pipe', 'ignore'] });
  const replies: Reply[] = [];
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    let i;
    while ((i = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, i);
      out = out.slice(i + 1);
      const m = /^\[(\d+\.\d+)\].*icmp_seq=(\d+)/.exec(line);
      if (m) replies.push({ t: Number(m[1]) * 1000, seq: Number(m[2]) });
      else summary += `${line}\n`;
    }
  });
  let summary = '';
  const exit = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    replies,
    async stop() {
      child.kill('SIGINT');
      await exit;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(summary + out);
      return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
    },
  };
}

export async function runExample(ctx: MeshContext, opts: ExampleOptions): Promise<number> {
  requireRoot();
  requireTools(['ip', 'ping', 'busybox', 'nsenter']);
  const steps = new Steps(opts.out);
  const work = mkdtempSync(join(tmpdir(), 'nsm-example-'));
  const children: ChildProcess[] = [];
  let meshStarted = false;
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    if (opts.keep) {
      steps.line(`\nKept: pods ${NSC_POD}, ${NSE_POD}${meshStarted ? ' and the mesh' : ''}. Clean up with: nsm stop-pod ${NSC_POD}; nsm stop-pod ${NSE_POD}${meshStarted ? '; nsm down' : ''}`);
    } else {
      steps.line('\nCleaning up');
      for (const pod of [NSC_POD, NSE_POD]) {
        if (readState(ctx.paths)?.pods[pod]) await stopPod(ctx, pod).catch((err: unknown) => steps.line(`  ! stop-pod ${pod}: ${errorMessage(err)}`));
      }
      if (meshStarted) {
        const r = await down({ ...ctx, say: () => undefined });
        if (r.leftovers.length) steps.line(`  ! left over: ${r.leftovers.join(', ')}`);
      }
      steps.line(`  ✔ removed pods ${NSC_POD}, ${NSE_POD}${meshStarted ? ', stopped the mesh' : ''}`);
    }
    rmSync(work, { recursive: true, force: true });
  };
  const onSignal = () => {
    steps.line('\nInterrupted');
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const nscStatus = ctx.paths.podStatus(NSC_POD, 'nsc');
  let code = 0;
  try {
    steps.line('nsm example dataplane-interrupt — the upstream "Dataplane Interruption" example on the local mesh');
    steps.line(`run dir ${ctx.paths.dir}; pods are network namespaces ${NSC_POD} and ${NSE_POD}\n`);

    await steps.run('Start the local mesh (registry, nsmgr, forwarder) — the seed\'s "basic setup"', 'nsm up', async () => {
      const r = await up({ ...ctx, say: () => undefined });
      meshStarted = !r.already;
      return { value: undefined, result: r.already ? 'already up: using it' : `up (supervisor pid ${r.supervisor.pid})` };
    });
    await steps.run('Create the test namespace: free pod names', undefined, async () => {
      for (const pod of [NSC_POD, NSE_POD]) {
        if (netnsExists(pod) || readState(ctx.paths)?.pods[pod]) throw new Error(`pod ${pod} already exists (a kept run?): remove it with nsm stop-pod ${pod}, or ip netns del ${pod}`);
      }
      return { value: undefined, result: `${NSC_POD} and ${NSE_POD} are free` };
    });
    await steps.run('Register the NetworkService from netsvc.yaml', `nsm apply -f ${opts.netsvcYaml}`, async () => {
      const out = await runNsm(opts.entry, ['apply', '-f', opts.netsvcYaml, '--registry-url', `unix://${ctx.paths.sockets.registry}`]);
      return { value: undefined, result: out.trim() };
    });
    await steps.run(
      'Deploy the NSE (patch-nse: NSM_CIDR_PREFIX, NSM_SERVICE_NAMES, NSM_REGISTER_SERVICE)',
      `nsm run nse --pod ${NSE_POD} -e NSM_CIDR_PREFIX=172.16.1.100/31 -e NSM_SERVICE_NAMES=dataplane-interrupt -e NSM_REGISTER_SERVICE=false --wait`,
      async () => {
        await runPod(ctx, {
          component: 'nse',
          pod: NSE_POD,
          env: { NSM_CIDR_PREFIX: '172.16.1.100/31', NSM_SERVICE_NAMES: 'dataplane-interrupt', NSM_REGISTER_SERVICE: 'false' },
          wait: true,
          timeoutMs: 60_000,
        });
        const nses = await findEndpoints(ctx.paths.sockets.registry, NSE_POD);
        return { value: undefined, result: `endpoint ${NSE_POD} registered for ${nses[0]?.networkServiceNames.join(',') ?? 'dataplane-interrupt'}` };
      },
    );
    await steps.run(
      'Deploy the NSC (patch-nsc: NSM_NETWORK_SERVICES) and wait until it is ready',
      `nsm run nsc --pod ${NSC_POD} -e NSM_NETWORK_SERVICES=kernel://dataplane-interrupt/nsm-1 --wait`,
      async () => {
        await runPod(ctx, { component: 'nsc', pod: NSC_POD, env: { NSM_NETWORK_SERVICES: 'kernel://dataplane-interrupt/nsm-1' }, wait: true, timeoutMs: 60_000 });
        return { value: undefined, result: `nsm-1 is up in ${NSC_POD}` };
      },
    );
    const pingBoth = async (label: string) => {
      await steps.run(`Ping from NSC to NSE${label}`, `ip netns exec ${NSC_POD} ping -c 4 ${NSE_ADDR}`, async () => {
        const r = await pingOk(NSC_POD, NSE_ADDR, 4);
        if (!r.ok) throw new Error(r.summary);
        return { value: undefined, result: r.summary };
      });
      await steps.run(`Ping from NSE to NSC${label}`, `ip netns exec ${NSE_POD} ping -c 4 ${NSC_ADDR}`, async () => {
        const r = await pingOk(NSE_POD, NSC_ADDR, 4);
        if (!r.ok) throw new Error(r.summary);
        return { value: undefined, result: r.summary };
      });
    };
    await pingBoth('');

    const pingerPath = join(work, `done-${Math.floor(Math.random() * 32768)}`);
    let pingerOut = '';
    const counter = startCounter(NSC_POD);
    children.push(counter.child);
    await steps.run('Run the seed\'s pinger in the background (busybox sh + ping); it stops at the first missing ping', `ip netns exec ${NSC_POD} busybox sh -c '<the seed pinger>' - ${pingerPath}`, async () => {
      const bin = busyboxBin(work);
      const pinger = spawn('ip', ['netns', 'exec', NSC_POD, '/bin/busybox', 'sh', '-c', SEED_PINGER_SCRIPT, '-', pingerPath], {
        env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      children.push(pinger);
      pinger.stdout!.on('data', (d: Buffer) => (pingerOut += d.toString()));
      await sleep(5000);
      if (existsSync(pingerPath)) throw new Error(`pinger is done already: ${pingerOut.trim()}`);
      return { value: undefined, result: 'running for 5 s without a missing ping' };
    });

    const cutAt = Date.now();
    await steps.run('Simulate a data-plane interruption', `ip netns exec ${NSC_POD} ip link set nsm-1 down`, async () => {
      await ip(['netns', 'exec', NSC_POD, 'ip', 'link', 'set', 'nsm-1', 'down']);
      return { value: undefined, result: 'nsm-1 is down' };
    });
    let pingerStopped = -1;
    const watchPinger = (async () => {
      while (!existsSync(pingerPath) && Date.now() - cutAt < 10_000) await sleep(20);
      if (existsSync(pingerPath)) pingerStopped = Date.now() - cutAt;
    })();
    await steps.run('Wait until the pinger stops (≤ 10 s): it saw the interruption', `timeout 10 sh -c 'while ! [ -f "${pingerPath}" ]; do sleep 1; done'`, async () => {
      // the seed's own loop: test, then sleep 1 s, for at most 10 s
      const until = Date.now() + 10_000;
      while (!existsSync(pingerPath)) {
        if (Date.now() > until) throw new Error('the pinger did not stop within 10 s');
        await sleep(1000);
      }
      await watchPinger;
      return { value: undefined, result: `pinger said "${pingerOut.trim().split('\n').at(-1)}" ${fmtMs(pingerStopped)} after the interruption` };
    });
    // On Kubernetes each `kubectl exec` of the seed takes a good fraction of a second and the pod has a
    // default route, so a ping sent before the heal just waits; in a pod netns without a default route it
    // fails at once. So wait for the heal explicitly (the mesh does it by itself), then ping as the seed.
    await steps.run('Wait for the mesh to heal by itself (≤ 10 s): first reply through nsm-1', undefined, async () => {
      const until = Date.now() + 10_000;
      for (;;) {
        if ((await pingOk(NSC_POD, NSE_ADDR, 1)).ok) break;
        if (Date.now() > until) throw new Error('no reply through nsm-1 within 10 s of the interruption');
        await sleep(50);
      }
      const first = counter.replies.find((r) => r.t >= cutAt);
      return { value: undefined, result: first ? `replies again: the independent ping's first reply came ${fmtMs(first.t - cutAt)} after the interruption` : 'replies again' };
    });
    await pingBoth(' (after the mesh healed by itself)');
    await sleep(400);
    const counts = await counter.stop();

    const status = readStatusFile(nscStatus) as { heal?: { lastHeal?: { at: number; detectedAt: number; ms: number; action: string; cause: string } } } | undefined;
    const heal = status?.heal?.lastHeal;
    steps.line('\nSummary');
    steps.line(`  interruption   ip link set nsm-1 down at ${new Date(cutAt).toISOString()}`);
    steps.line(`  pinger         stopped ${fmtMs(pingerStopped)} after it (it saw the loss)`);
    if (heal) {
      steps.line(`  detected       +${fmtMs(heal.detectedAt - cutAt)} (fault confirmed by ${heal.cause === 'data-plane' ? 'kernel-state checks' : 'the control plane'})`);
      steps.line(`  healed         +${fmtMs(heal.at - cutAt)} by ${heal.action === 'repair' ? 'repair in place (same interface, MAC and ifindex)' : 'reselect'}`);
    } else {
      steps.line('  healed         (no heal event in the NSC status file)');
    }
    const lost = counts.sent - counts.received;
    steps.line(`  pings lost     ${lost} of ${counts.sent} at a 0.2 s interval (independent ping)`);
    steps.line('  timeline       (replies of the independent ping, relative to the interruption)');
    const before = counter.replies.filter((r) => r.t < cutAt).slice(-3);
    const after = counter.replies.filter((r) => r.t >= cutAt).slice(0, 3);
    for (const r of before) steps.line(`      ${fmtRel(r.t - cutAt)}  reply seq=${r.seq}`);
    steps.line(`      ${fmtRel(0)}  ── nsm-1 set down ──`);
    if (heal) steps.line(`      ${fmtRel(heal.at - cutAt)}  ── healed ──`);
    let prev = before.at(-1)?.seq;
    for (const r of after) {
      const gap = prev !== undefined && r.seq > prev + 1 ? `   (seq ${prev + 1}${r.seq - 1 > prev + 1 ? `–${r.seq - 1}` : ''} lost)` : '';
      steps.line(`      ${fmtRel(r.t - cutAt)}  reply seq=${r.seq}${gap}`);
      prev = r.seq;
    }
    const failed = steps.results.filter((r) => !r.ok).length;
    steps.line(`\n${failed === 0 ? '✔ every step passed' : `✖ ${failed} step(s) failed`} (${steps.results.length} steps)`);
    code = failed === 0 ? 0 : 1;
  } catch (err) {
    if (!(err instanceof StepFailed)) steps.line(`✖ ${errorMessage(err)}`);
    else steps.line(`\n✖ ${err.message}`);
    code = 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await cleanup();
  }
  return code;
}

const fmtRel = (ms: number) => `${ms >= 0 ? '+' : '-'}${(Math.abs(ms) / 1000).toFixed(2)} s`.padStart(8);

function runNsm(entry: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(err.trim() || `exit ${code}`))));
  });
}
