import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commandOf, newSeedRun, SEED_STEPS } from './example-seed.js';
import { StepFailed, StepRunner } from './example-steps.js';
import { summaryLines, verdictLine, type ExampleOutcome } from './example-summary.js';
import type { MeshContext } from './mesh.js';
import { runPaths } from './paths.js';

function capture(): { out: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const out = { isTTY: false, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
  return { out, text: () => text.replace(/\(\d+ ms\)/g, '(N ms)') };
}

test('step runner: number, title, command, result and duration; a failure names the step', async () => {
  const c = capture();
  const steps = new StepRunner(c.out);
  await steps.run('First', 'nsm up', async () => 'up');
  await steps.run('Second', undefined, async () => 'free');
  await assert.rejects(
    steps.run('Third', 'ping', async () => {
      throw new Error('no reply');
    }),
    (err: Error) => err instanceof StepFailed && err.message === 'step 3 failed: Third',
  );
  assert.equal(c.text(), ['[ 1] First', '     $ nsm up', '     ✔ up (N ms)', '[ 2] Second', '     ✔ free (N ms)', '[ 3] Third', '     $ ping', '     ✖ no reply (N ms)', ''].join('\n'));
  assert.deepEqual(
    steps.results.map((r) => [r.title, r.ok]),
    [
      ['First', true],
      ['Second', true],
      ['Third', false],
    ],
  );
  assert.equal(verdictLine(steps.results), '\n✖ 1 step(s) failed (3 steps)');
  assert.equal(verdictLine(steps.results.slice(0, 2)), '\n✔ every step passed (2 steps)');
});

test('seed steps: the upstream example step for step, with the local command of each', () => {
  const ctx: MeshContext = { paths: runPaths('/run/x'), hostname: 'h', entry: '/nsm.js', say: () => undefined };
  const run = newSeedRun(ctx, { netsvcYaml: '/ex/netsvc.yaml', entry: '/nsm.js' }, '/tmp/w');
  const flag = run.pingerPath;
  assert.match(flag, /^\/tmp\/w\/done-\d+$/);
  assert.deepEqual(
    SEED_STEPS.map((s) => [s.title, commandOf(s, run)]),
    [
      ['Start the local mesh (registry, nsmgr, forwarder) — the seed\'s "basic setup"', 'nsm up'],
      ['Create the test namespace: free pod names', undefined],
      ['Register the NetworkService from netsvc.yaml', 'nsm apply -f /ex/netsvc.yaml'],
      [
        'Deploy the NSE (patch-nse: NSM_CIDR_PREFIX, NSM_SERVICE_NAMES, NSM_REGISTER_SERVICE)',
        'nsm run nse --pod nse-kernel -e NSM_CIDR_PREFIX=172.16.1.100/31 -e NSM_SERVICE_NAMES=dataplane-interrupt -e NSM_REGISTER_SERVICE=false --wait',
      ],
      ['Deploy the NSC (patch-nsc: NSM_NETWORK_SERVICES) and wait until it is ready', 'nsm run nsc --pod nsc-kernel -e NSM_NETWORK_SERVICES=kernel://dataplane-interrupt/nsm-1 --wait'],
      ['Ping from NSC to NSE', 'ip netns exec nsc-kernel ping -c 4 172.16.1.100'],
      ['Ping from NSE to NSC', 'ip netns exec nse-kernel ping -c 4 172.16.1.101'],
      ["Run the seed's pinger in the background (busybox sh + ping); it stops at the first missing ping", `ip netns exec nsc-kernel busybox sh -c '<the seed pinger>' - ${flag}`],
      ['Simulate a data-plane interruption', 'ip netns exec nsc-kernel ip link set nsm-1 down'],
      ['Wait until the pinger stops (≤ 10 s): it saw the interruption', `timeout 10 sh -c 'while ! [ -f "${flag}" ]; do sleep 1; done'`],
      ['Wait for the mesh to heal by itself (≤ 10 s): first reply through nsm-1', undefined],
      ['Ping from NSC to NSE (after the mesh healed by itself)', 'ip netns exec nsc-kernel ping -c 4 172.16.1.100'],
      ['Ping from NSE to NSC (after the mesh healed by itself)', 'ip netns exec nse-kernel ping -c 4 172.16.1.101'],
    ],
  );
});

const CUT = Date.parse('2026-12-02T05:20:20.998Z');
const reply = (ms: number, seq: number) => ({ t: CUT + ms, seq });

test('summary: detection, heal, loss and a timeline naming the lost sequence numbers', () => {
  const outcome: ExampleOutcome = {
    cutAt: CUT,
    pingerStopped: 219,
    heal: { at: CUT + 605, detectedAt: CUT + 442, ms: 163, action: 'repair', cause: 'data-plane' },
    counts: { sent: 38, received: 35 },
    replies: [reply(-910, 21), reply(-710, 22), reply(-510, 23), reply(-310, 24), reply(-100, 25), reply(713, 29), reply(920, 30), reply(1120, 31), reply(1320, 32)],
  };
  assert.equal(
    summaryLines(outcome).join('\n'),
    `
Summary
  interruption   ip link set nsm-1 down at 2026-12-02T05:20:20.998Z
  pinger         stopped 219 ms after it (it saw the loss)
  detected       +442 ms (fault confirmed by kernel-state checks)
  healed         +605 ms by repair in place (same interface, MAC and ifindex)
  pings lost     3 of 38 at a 0.2 s interval (independent ping)
  timeline       (replies of the independent ping, relative to the interruption)
       -0.51 s  reply seq=23
       -0.31 s  reply seq=24
       -0.10 s  reply seq=25
       +0.00 s  ── nsm-1 set down ──
       +0.60 s  ── healed ──
       +0.71 s  reply seq=29   (seq 26–28 lost)
       +0.92 s  reply seq=30
       +1.12 s  reply seq=31`,
  );
});

test('summary: no heal event, a reselect, and a single lost reply', () => {
  const base: ExampleOutcome = { cutAt: CUT, pingerStopped: 1500, heal: undefined, counts: { sent: 10, received: 9 }, replies: [reply(-200, 4), reply(300, 6)] };
  const lines = summaryLines(base);
  assert.ok(lines.includes('  healed         (no heal event in the NSC status file)'));
  assert.ok(lines.includes('  pinger         stopped 1.50 s after it (it saw the loss)'));
  assert.ok(!lines.some((l) => l.includes('── healed ──')));
  assert.equal(lines.at(-1), '       +0.30 s  reply seq=6   (seq 5 lost)');
  const reselect = summaryLines({ ...base, heal: { at: CUT + 2000, detectedAt: CUT + 1000, ms: 1000, action: 'reselect', cause: 'control-plane' } });
  assert.ok(reselect.includes('  detected       +1.00 s (fault confirmed by the control plane)'));
  assert.ok(reselect.includes('  healed         +2.00 s by reselect'));
});

test('seed steps across nodes: the mesh of nodes, the NSE on node-2 and the NSC on node-1', () => {
  const ctx: MeshContext = { paths: runPaths('/run/x'), hostname: 'h', entry: '/nsm.js', say: () => undefined };
  const run = newSeedRun(ctx, { netsvcYaml: '/ex/netsvc.yaml', entry: '/nsm.js', nodes: 2 }, '/tmp/w');
  const cmds = SEED_STEPS.map((s) => commandOf(s, run));
  assert.equal(cmds[0], 'nsm up --nodes 2');
  assert.equal(cmds[3], 'nsm run nse --pod nse-kernel --node node-2 -e NSM_CIDR_PREFIX=172.16.1.100/31 -e NSM_SERVICE_NAMES=dataplane-interrupt -e NSM_REGISTER_SERVICE=false --wait');
  assert.equal(cmds[4], 'nsm run nsc --pod nsc-kernel --node node-1 -e NSM_NETWORK_SERVICES=kernel://dataplane-interrupt/nsm-1 --wait');
  assert.equal(cmds.filter((c) => c?.includes('--node')).length, 3, 'only up and the two pods change');
});
