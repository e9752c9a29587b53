/**
 * Fuzz suite, tier 2: random and malformed Requests, Closes, raw bytes, monitor streams and registrations
 * against the in-process sandbox mesh (registry, nsmgr, forwarder on the fake data plane, one NSE with a
 * /29 pool) over real gRPC on unix sockets. After every run: the servers answer health and a valid
 * Request, links only in the client pods and only for live connections, nothing left after the Closes,
 * the pool whole again, the registry back to its live registrations. Seeded and time-bounded (run.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { parseAlias } from '../../dataplane/spec.js';
import { KeyedSerializer } from '../../networkservice/begin/index.js';
import { sandbox, type Sandbox } from '../sandbox.js';
import { connectionOpArb, registryOpArb, scenarioArb, validRequest, type FuzzOptions, type FuzzWorld, type Scenario } from './arbitraries.js';
import { buildRequest, FuzzDriver, type FuzzUrls } from './driver.js';
import { baseline, checkInvariants, missingLinks, type Baseline, type InvariantHooks, type SeenLink } from './invariants.js';
import { checkFuzz, fuzzSettings, summarize, type FuzzBudget } from './run.js';

const SERVICE = 'svc';
const NSE = 'nse-1';
const PODS = ['fake://pod-a', 'fake://pod-b'];
const CIDR = '10.60.0.0/29';
const BUDGET: FuzzBudget = { runs: 150, timeMs: 15_000 };

const settings = fuzzSettings();

/** One sandbox per property, rebuilt after a run that broke an invariant (so shrinking starts clean). */
class Mesh {
  sb: Sandbox | undefined;
  world!: FuzzWorld;
  urls!: FuzzUrls;
  hooks!: InvariantHooks;
  base!: Baseline;
  #runs = 0;
  /** Runs one at a time (one key). */
  readonly #serial = new KeyedSerializer();
  /** Outcomes of every operation over all runs (`kind status` → count). */
  readonly outcomes = new Map<string, number>();

  async start(): Promise<void> {
    const sb = await sandbox({ requestTimeout: '5s' });
    this.sb = sb;
    const nse = await sb.addEndpoint({ name: NSE, services: [SERVICE], cidr: CIDR });
    const node = sb.nodes[0]!;
    this.urls = { registry: sb.registry.url, nsmgr: node.nsmgr.url, forwarder: node.forwarder.url, nse: nse.url };
    this.world = {
      service: SERVICE,
      hops: { nsmgr: node.nsmgr.name, forwarder: node.forwarder.name, nse: NSE },
      pods: PODS,
      badNetns: [],
      nseUrl: nse.url,
      deadUrls: [`unix://${sb.dir}/nowhere.sock`, 'tcp://127.0.0.1:1'],
      liveNames: [NSE, node.forwarder.name, node.nsmgr.name, SERVICE, 'forwarder'],
    };
    const dp = node.dataplane;
    const world = this.world;
    this.hooks = {
      urls: this.urls,
      maxCapacity: 6,
      settleMs: 150,
      validRequest: (fresh) => buildRequest(world, validRequest(world, 0), fresh),
      async kernelWhileHeld(forwarderConnections) {
        const out: string[] = [];
        const held = new Set(dp.held());
        const seen: SeenLink[] = [];
        for (const ns of dp.namespaces()) {
          if (!PODS.includes(ns) && ns !== `fake://${NSE}`) out.push(`links in ${ns}, which is neither a client pod nor the NSE: ${dp.links(ns).map((l) => l.name).join(', ')}`);
          for (const l of dp.links(ns)) {
            const a = parseAlias(l.alias);
            seen.push({ netns: ns, name: l.name, owner: a?.owner });
            if (a && !held.has(a.owner)) out.push(`link ${l.name} in ${ns} belongs to ${a.owner}, a connection the forwarder does not hold`);
          }
        }
        return [...out, ...missingLinks(await forwarderConnections(), seen)];
      },
      async kernelAfterClose() {
        const out = dp.namespaces().map((ns) => `links left in ${ns}: ${dp.links(ns).map((l) => `${l.name} (${l.alias ?? 'no alias'})`).join(', ')}`);
        if (dp.held().length > 0) out.push(`the data plane still holds ${dp.held().join(', ')}`);
        return out;
      },
    };
    const d = new FuzzDriver(this.world, this.urls, 'b');
    try {
      this.base = await baseline(d, this.hooks);
    } finally {
      d.close();
    }
  }

  async restart(): Promise<void> {
    await this.sb?.close();
    await this.start();
  }

  /**
   * Runs one scenario and checks every invariant; throws with the problems found. Runs are queued: one
   * that fast-check stopped waiting for (time budget, run timeout) still ends before the next starts.
   */
  run(s: Scenario): Promise<void> {
    return this.#serial.run('', () => this.#run(s));
  }

  /** Waits for the run in progress, if any. */
  idle(): Promise<void> {
    return this.#serial.run('', async () => undefined);
  }

  async #run(s: Scenario): Promise<void> {
    const d = new FuzzDriver(this.world, this.urls, (this.#runs++ % 1296).toString(36));
    let problems: string[];
    const t0 = performance.now();
    try {
      await d.run(s);
      const t1 = performance.now();
      problems = await checkInvariants(d, this.hooks, this.base);
      if (process.env.NSM_FUZZ_DEBUG === '1') console.log(`# fuzz run: ops ${(t1 - t0).toFixed(0)} ms, checks ${(performance.now() - t1).toFixed(0)} ms, abandoned ${d.abandoned}`);
    } finally {
      d.close();
      for (const [k, v] of d.outcomes) this.outcomes.set(k, (this.outcomes.get(k) ?? 0) + v);
    }
    if (problems.length > 0) {
      await this.restart();
      assert.fail(`${problems.join('\n')}\n(outcomes: ${[...d.outcomes].map(([k, v]) => `${k}×${v}`).join(', ')})`);
    }
  }
}

function fuzzIt(name: string, opts: FuzzOptions, ops: (w: FuzzWorld) => fc.Arbitrary<Scenario>, skip?: string): void {
  it(name, { skip }, async () => {
    const m = new Mesh();
    try {
      await m.start();
      await checkFuzz(name, ops(m.world), (s) => m.run(s), BUDGET, settings);
    } finally {
      await m.idle();
      console.log(`# fuzz ${name} outcomes: ${summarize(m.outcomes)}`);
      await m.sb?.close();
    }
  });
}

describe('fuzz: sandbox mesh over gRPC', () => {
  before(() => console.log(`# fuzz seed ${settings.seed} (NSM_FUZZ_SEED to change it)`));
  after(() => undefined);

  const safe: FuzzOptions = {};
  fuzzIt('sandbox-connections', safe, (w) => scenarioArb(connectionOpArb(w, safe), safe));
  fuzzIt('sandbox-registry', safe, (w) => scenarioArb(fc.oneof({ weight: 3, arbitrary: registryOpArb(w) }, { weight: 1, arbitrary: connectionOpArb(w, safe) }), safe));

  const shared: FuzzOptions = { sharedInterfaceNames: true };
  fuzzIt('sandbox-shared-ifnames', shared, (w) => scenarioArb(connectionOpArb(w, shared), shared));
  const pathless: FuzzOptions = { pathlessRerequest: true };
  fuzzIt('sandbox-pathless-rerequest', pathless, (w) => scenarioArb(connectionOpArb(w, pathless), pathless));
  const sameId: FuzzOptions = { concurrentSameId: true };
  fuzzIt('sandbox-same-id', sameId, (w) => scenarioArb(connectionOpArb(w, sameId), sameId, w));
});
