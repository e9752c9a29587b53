/**
 * `nsm example dataplane-interrupt`: the upstream example (shared seed), step for step, on the local
 * mesh. Each step prints what it runs (the local twin of the seed's kubectl step), a progress indicator,
 * its result and its duration; the end prints when the interruption was detected and healed, how many
 * pings were lost and a short timeline of replies. Exit code 0 only if every step passed. Cleans up
 * after itself — also on Ctrl-C or a failing step — unless `keep` is set.
 *
 * Parts: `example-seed.ts` (the steps), `example-steps.ts` (the step runner), `example-traffic.ts`
 * (pings), `example-summary.ts` (summary and timeline); this file runs them and cleans up.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '../core/errors.js';
import { commandOf, newSeedRun, NSC_NODE, NSC_POD, NSE_NODE, NSE_POD, SEED_STEPS, seedOutcome, type SeedRun } from './example-seed.js';
import { StepFailed, StepRunner } from './example-steps.js';
import { summaryLines, verdictLine } from './example-summary.js';
import { down, requireRoot, requireTools, type MeshContext } from './mesh.js';
import { stopPod } from './pods.js';
import { readState } from './state.js';

export { NSC_ADDR, NSC_POD, NSE_ADDR, NSE_POD, SEED_PINGER_SCRIPT } from './example-seed.js';

export interface ExampleOptions {
  readonly keep: boolean;
  /** A mesh of this many nodes (≥ 2): the NSE on node-2, the NSC on node-1. */
  readonly nodes?: number;
  readonly netsvcYaml: string;
  readonly entry: string;
  readonly out: NodeJS.WriteStream;
}

export async function runExample(ctx: MeshContext, opts: ExampleOptions): Promise<number> {
  requireRoot();
  requireTools(['ip', 'ping', 'busybox', 'nsenter', ...(opts.nodes !== undefined ? ['ethtool'] : [])]);
  const steps = new StepRunner(opts.out);
  const say = (line: string) => steps.line(line);
  const run = newSeedRun(ctx, opts, mkdtempSync(join(tmpdir(), 'nsm-example-')));
  let cleaning: Promise<void> | undefined;
  const cleanup = () => (cleaning ??= cleanUp(run, opts.keep, say));
  const onSignal = () => {
    say('\nInterrupted');
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say('nsm example dataplane-interrupt — the upstream "Dataplane Interruption" example on the local mesh');
    const where = opts.nodes !== undefined ? ` (${NSC_POD} on ${NSC_NODE}, ${NSE_POD} on ${NSE_NODE}, of ${opts.nodes} nodes)` : '';
    say(`run dir ${ctx.paths.dir}; pods are network namespaces ${NSC_POD} and ${NSE_POD}${where}\n`);
    for (const step of SEED_STEPS) await steps.run(step.title, commandOf(step, run), () => step.run(run));
    for (const line of summaryLines(await seedOutcome(run))) say(line);
    say(verdictLine(steps.results));
    return steps.results.every((r) => r.ok) ? 0 : 1;
  } catch (err) {
    say(err instanceof StepFailed ? `\n✖ ${err.message}` : `✖ ${errorMessage(err)}`);
    return 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await cleanup();
  }
}

/** Kills what the steps started, then stops the pods and (if this run started it) the mesh, unless kept. */
async function cleanUp(run: SeedRun, keep: boolean, say: (line: string) => void): Promise<void> {
  for (const c of run.children) if (c.exitCode === null) c.kill('SIGKILL');
  const mesh = run.meshStarted;
  if (keep) {
    say(`\nKept: pods ${NSC_POD}, ${NSE_POD}${mesh ? ' and the mesh' : ''}. Clean up with: nsm stop-pod ${NSC_POD}; nsm stop-pod ${NSE_POD}${mesh ? '; nsm down' : ''}`);
  } else {
    say('\nCleaning up');
    for (const pod of [NSC_POD, NSE_POD]) {
      if (readState(run.ctx.paths)?.pods[pod]) await stopPod(run.ctx, pod).catch((err: unknown) => say(`  ! stop-pod ${pod}: ${errorMessage(err)}`));
    }
    if (mesh) {
      const r = await down({ ...run.ctx, say: () => undefined });
      if (r.leftovers.length) say(`  ! left over: ${r.leftovers.join(', ')}`);
    }
    say(`  ✔ removed pods ${NSC_POD}, ${NSE_POD}${mesh ? ', stopped the mesh' : ''}`);
  }
  rmSync(run.work, { recursive: true, force: true });
}
