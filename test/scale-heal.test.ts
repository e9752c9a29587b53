/**
 * No heal without a fault, at scale (issue 11): 200 connections (4 NSC processes of 50) are set up 50 at
 * a time, rest 30 s with both cores kept busy, then one real fault is injected on one connection and the
 * NSCs are stopped. Exactly one `heal detected` event may appear over the whole run: the one for the
 * broken connection, which must heal. Before the fix every connection established after its NSC's first
 * one had no probe grace of its own and nearly all of them "healed" without a fault.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it, type TestContext } from 'node:test';
import { defer, requireRoot, sh, startMesh, waitFor } from './harness.js';
import { startScaleClients } from './scale-harness.js';

const N = 200;
const REST_MS = 30_000;

/** One busy loop per core, killed by pid when the test ends (or earlier through the returned stop). */
function busyCores(t: TestContext, cores = 2): () => void {
  const loops = Array.from({ length: cores }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  const stop = () => {
    for (const p of loops) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  };
  defer(t, stop);
  return stop;
}

function assertNoHeal(detected: Array<{ connId: string; detail: string }>, when: string): void {
  const sample = detected.slice(0, 3).map((d) => `${d.connId}: ${d.detail}`);
  assert.equal(detected.length, 0, `${detected.length} heal detected events ${when} without any fault, e.g. ${JSON.stringify(sample)}`);
}

describe('heal at scale (real processes, real netns)', () => {
  it(`${N} connections through setup, ${REST_MS / 1000} s at rest with both cores busy and teardown: no heal but the one of a real fault`, { timeout: 240_000 }, async (t) => {
    if (!requireRoot(t)) return;
    const mesh = await startMesh(t, { forwarderEnv: { NSM_LOG_LEVEL: 'info' } });
    const t0 = Date.now();
    const scale = await startScaleClients(t, mesh, { n: N, mode: 'batch', timeoutMs: 150_000 });
    console.log(`# ${N} connections up in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${scale.retries()} client retries`);
    assertNoHeal(scale.detections(), 'during setup');

    const idle = busyCores(t);
    await new Promise((r) => setTimeout(r, REST_MS));
    assertNoHeal(scale.detections(), 'at rest with both cores busy');

    const victim = scale.nscs[1]!;
    await sh('ip', ['netns', 'exec', victim.ns, 'ip', 'link', 'set', 'nsm-7', 'down']);
    await waitFor('nsc-1-7 healed', () => /"msg":"heal healed".*"connId":"nsc-1-7"|"connId":"nsc-1-7".*"msg":"heal healed"/.test(victim.proc.log()), 20_000, 100);
    idle();
    const ms = await scale.stopClients();
    console.log(`# NSCs stopped in ${ms} ms; ${await scale.nseLinks()} links left in the NSE netns`);
    const detected = scale.detections();
    assert.deepEqual(
      detected.map((d) => [d.connId, d.cause]),
      [['nsc-1-7', 'data-plane']],
      `exactly one heal, for the broken connection: ${JSON.stringify(detected.slice(0, 5))}`,
    );
  });
});
