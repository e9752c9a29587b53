/**
 * Fuzz suite, tier 3: random and malformed Requests, Closes, raw bytes, monitor streams and registrations
 * against real processes (registry, nsmgr, a forwarder with the Linux data plane, an NSE with a /29 pool in
 * its own netns), over gRPC on unix sockets. The client pods are throwaway `nsmt-*` netns; every Request
 * names one of them or a URL that names no netns at all, so the forwarder touches only netns this test
 * created. After every run: every process alive and answering health and a valid Request; links with
 * nsm-ts aliases only in the test's netns (all netns on the machine are listed, the host's included) and
 * only for live connections; none left after the Closes; the NSE's pool whole; the registry back to its
 * live registrations. Seeded and time-bounded (src/testing/fuzz/run.ts).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { parseAlias } from '../src/dataplane/spec.js';
import { KeyedSerializer } from '../src/networkservice/begin/index.js';
import { listNetns } from '../src/dataplane/linux/netns.js';
import { connectionOpArb, registryOpArb, scenarioArb, validRequest, type FuzzOptions, type FuzzWorld, type Scenario } from '../src/testing/fuzz/arbitraries.js';
import { buildRequest, FuzzDriver, type FuzzUrls } from '../src/testing/fuzz/driver.js';
import { baseline, checkInvariants, missingLinks, type Baseline, type InvariantHooks, type SeenLink } from '../src/testing/fuzz/invariants.js';
import { checkFuzz, fuzzSettings, summarize, type FuzzBudget } from '../src/testing/fuzz/run.js';
import { NOT_ROOT_REASON, IS_ROOT, ROOT, defer, netns, nsm, startMesh, type Mesh, type Proc } from './harness.js';

const run = promisify(execFile);
const SERVICE = 'fz-svc';
const NSE = 'fz-nse';
const CIDR = '10.61.0.0/29';
const BUDGET: FuzzBudget = { runs: 60, timeMs: 30_000, shrinkMs: 15_000 };
const KNOWN_BUDGET: FuzzBudget = { runs: 40, timeMs: 10_000, shrinkMs: 10_000 };
const settings = fuzzSettings();

interface Kernel {
  /** Links of one netns: name, alias owner. */
  links(path: string): Promise<Array<{ name: string; owner: string | undefined; alias: string | undefined }>>;
}

const kernel: Kernel = {
  async links(path) {
    const { stdout } = await run('nsenter', [`--net=${path}`, 'ip', '-j', 'link', 'show'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    return (JSON.parse(stdout) as Array<{ ifname: string; ifalias?: string }>).map((l) => ({ name: l.ifname, alias: l.ifalias, owner: parseAlias(l.ifalias)?.owner }));
  },
};

/** The forwarder's name, which its data plane writes into each alias as the owner's scope (`<scope>/<connection id>`). */
const FORWARDER = `fz-forwarder-${process.pid}`;
const SCOPE = `${FORWARDER}/`;
/** The connection id an alias owner of this test's forwarder stands for (undefined: not ours). */
const ourConnection = (owner: string | undefined): string | undefined => (owner?.startsWith(SCOPE) ? owner.slice(SCOPE.length) : undefined);

async function netnsUrls(name: string): Promise<{ inode: string; file: string; path: string }> {
  const path = `/run/netns/${name}`;
  const s = statSync(path, { bigint: true });
  return { inode: `inode://${s.dev}/${s.ino}`, file: `file://${path}`, path };
}

const POD_PROXY = join(ROOT, 'dist/test/fixtures/pod-proxy.js');

/** Starts a relay inside netns `ns` from `listen` to the unix URL `target`; resolves with its unix URL once it listens. */
async function podProxy(t: TestContext, ns: string, listen: string, target: string): Promise<string> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, POD_PROXY, listen, target.replace(/^unix:\/\//, '')], { stdio: ['ignore', 'pipe', 'inherit'] });
  defer(t, async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`pod proxy in ${ns} exited (${code})`)));
  });
  return `unix://${listen}`;
}

/** The mesh under test, shared by the runs of one property; the invariants leave it clean after each. */
class RealMesh {
  mesh!: Mesh;
  nse!: Proc;
  world!: FuzzWorld;
  urls!: FuzzUrls;
  hooks!: InvariantHooks;
  base!: Baseline;
  /** The test's netns: path → the URLs a Request may name it by. */
  readonly ours = new Map<string, string[]>();
  #logOffset = 0;
  /** Connection ids the forwarder has logged (owners of links it may have made). */
  readonly #fwdIds = new Set<string>();
  #runs = 0;
  /** Runs one at a time (one key). */
  readonly #serial = new KeyedSerializer();
  /** Outcomes of every operation over all runs (`kind status` → count). */
  readonly outcomes = new Map<string, number>();

  async start(t: TestContext): Promise<void> {
    this.mesh = await startMesh(t, { forwarderEnv: { NSM_NAME: FORWARDER }, nsmgrEnv: { NSM_NAME: 'fz-nsmgr' } });
    const dir = this.mesh.dir;
    const nseNs = await netns(t, 'fznse');
    const pods = [await netns(t, 'fzpa'), await netns(t, 'fzpb')];
    const nseUrl = `unix://${dir}/nse.sock`;
    this.nse = nsm(t, dir, 'nse', ['nse'], { NSM_NAME: NSE, NSM_CONNECT_TO: this.mesh.sock.nsmgr, NSM_LISTEN_ON: nseUrl, NSM_CIDR_PREFIX: CIDR, NSM_SERVICE_NAMES: SERVICE }, nseNs);
    await this.nse.waitLog(/endpoint registered/);
    const podUrls = await Promise.all(pods.map(netnsUrls));
    for (const [i, u] of podUrls.entries()) this.ours.set(u.path, [u.inode, u.file, pods[i]!]);
    const nseUrls = await netnsUrls(nseNs);
    this.ours.set(nseUrls.path, [nseUrls.inode, nseUrls.file, nseNs]);
    const notNetns = `${dir}/not-a-netns`;
    writeFileSync(notNetns, 'x');
    // A client in each pod: nsmgr binds a kernel mechanism to the netns its caller's socket was made in.
    const nsmgrFrom = await Promise.all(pods.map((p, i) => podProxy(t, p, `${dir}/pod-${i}.sock`, this.mesh.sock.nsmgr)));
    this.urls = { registry: this.mesh.sock.registry, nsmgr: this.mesh.sock.nsmgr, forwarder: this.mesh.sock.forwarder, nse: nseUrl, nsmgrFrom };
    this.world = {
      service: SERVICE,
      hops: { nsmgr: 'fz-nsmgr', forwarder: FORWARDER, nse: NSE },
      pods: [podUrls[0]!.inode, podUrls[1]!.inode, podUrls[0]!.file],
      podOf: [0, 1, 0],
      // No netns at all: an inode no namespace has (nsfs inodes are ≥ 0xF0000000), missing or non-nsfs files, malformed URLs.
      badNetns: ['inode://4/1234', `inode://${statSync(podUrls[0]!.path).dev}/77`, 'file:///nonexistent/netns', `file://${notNetns}`, 'inode://x/y', 'file://relative/ns', 'http://netns', 'inode://'],
      nseUrl,
      deadUrls: [`unix://${dir}/nowhere.sock`, 'tcp://127.0.0.1:1'],
      liveNames: [NSE, FORWARDER, 'fz-nsmgr', SERVICE, 'forwarder'],
    };
    this.hooks = this.#hooks();
    const d = new FuzzDriver(this.world, this.urls, 'b');
    try {
      this.base = await baseline(d, this.hooks);
    } finally {
      d.close();
    }
  }

  /** Links of the test's netns as SeenLinks (one per URL the netns goes by), and problems of links that are not ours. */
  async #ourLinks(): Promise<{ seen: SeenLink[]; problems: string[]; owners: Set<string> }> {
    const seen: SeenLink[] = [];
    const problems: string[] = [];
    const owners = new Set<string>();
    for (const [path, urls] of this.ours) {
      for (const l of await kernel.links(path)) {
        if (l.name === 'lo') continue;
        const owner = ourConnection(l.owner);
        if (!owner) problems.push(`link ${l.name} in ${urls[2]} is not this forwarder's (alias ${l.alias ?? 'none'})`);
        else owners.add(owner);
        for (const u of urls) seen.push({ netns: u, name: l.name, owner });
      }
    }
    return { seen, problems, owners };
  }

  /** nsm-ts links anywhere but the test's netns: any in the host's, the forwarder's own in any other. */
  async #elsewhere(): Promise<string[]> {
    this.#readForwarderIds();
    const problems: string[] = [];
    const hostPath = '/proc/self/ns/net'; // the netns of this test and of the mesh processes
    const host = statSync(hostPath);
    for (const ns of await listNetns()) {
      if (this.ours.has(ns.path)) continue;
      const s = statSync(ns.path, { throwIfNoEntry: false });
      if (!s) continue;
      const isHost = s.ino === host.ino && s.dev === host.dev;
      const links = await kernel.links(ns.path).catch(() => []);
      for (const l of links) {
        if (!l.owner) continue;
        if (isHost) problems.push(`nsm-ts link ${l.name} (${l.alias}) in the host netns`);
        else if (ourConnection(l.owner) !== undefined || this.#fwdIds.has(l.owner)) problems.push(`link ${l.name} of this forwarder's connection ${l.owner} in ${ns.path}, a netns this test did not create`);
      }
    }
    return problems;
  }

  #readForwarderIds(): void {
    const text = readFileSync(this.mesh.forwarder.logFile, 'utf8');
    for (const m of text.slice(this.#logOffset).matchAll(/"connId":"([^"]+)"/g)) this.#fwdIds.add(m[1]!);
    this.#logOffset = text.length;
  }

  #alive(): string[] {
    return [this.mesh.registry, this.mesh.nsmgr, this.mesh.forwarder, this.nse].filter((p) => p.child.exitCode !== null || p.child.signalCode !== null).map((p) => `${p.name} exited (${p.child.exitCode ?? p.child.signalCode}); its log ends: ${p.log().slice(-600)}`);
  }

  #hooks(): InvariantHooks {
    const world = this.world;
    return {
      urls: this.urls,
      maxCapacity: 6,
      settleMs: 500,
      validRequest: (fresh) => buildRequest(world, validRequest(world, 0), fresh),
      kernelWhileHeld: async (forwarderConnections) => {
        const { seen, problems, owners } = await this.#ourLinks();
        const conns = await forwarderConnections();
        const held = new Set(conns.map((c) => c.id));
        for (const o of owners) if (!held.has(o)) problems.push(`links of ${o}, a connection the forwarder does not hold`);
        return [...this.#alive(), ...problems, ...missingLinks(conns, seen), ...(await this.#elsewhere())];
      },
      kernelAfterClose: async () => {
        const { seen, problems } = await this.#ourLinks();
        const left = seen.filter((l) => l.netns.startsWith('nsmt-')).map((l) => `${l.name} (owner ${l.owner ?? 'none'}) in ${l.netns}`);
        return [...this.#alive(), ...problems, ...(left.length > 0 ? [`links left after every Close: ${left.join(', ')}`] : []), ...(await this.#elsewhere())];
      },
    };
  }

  run(s: Scenario): Promise<void> {
    return this.#serial.run('', () => this.#run(s));
  }

  idle(): Promise<void> {
    return this.#serial.run('', async () => undefined);
  }

  async #run(s: Scenario): Promise<void> {
    const d = new FuzzDriver(this.world, this.urls, (this.#runs++ % 1296).toString(36));
    let problems: string[];
    try {
      await d.run(s);
      problems = await checkInvariants(d, this.hooks, this.base);
    } finally {
      d.close();
      for (const [k, v] of d.outcomes) this.outcomes.set(k, (this.outcomes.get(k) ?? 0) + v);
    }
    if (problems.length > 0) assert.fail(`${problems.join('\n')}\n(outcomes: ${[...d.outcomes].map(([k, v]) => `${k}×${v}`).join(', ')})`);
  }
}

function fuzzIt(name: string, opts: FuzzOptions, ops: (w: FuzzWorld) => fc.Arbitrary<Scenario>, budget: FuzzBudget, skip?: string): void {
  it(name, { skip: skip ?? (IS_ROOT ? undefined : NOT_ROOT_REASON) }, async (t) => {
    const m = new RealMesh();
    await m.start(t);
    try {
      await checkFuzz(name, ops(m.world), (s) => m.run(s), budget, settings);
    } finally {
      await m.idle();
      console.log(`# fuzz ${name} outcomes: ${summarize(m.outcomes)}`);
    }
  });
}

describe('fuzz: real forwarder (Linux data plane) on throwaway netns', () => {
  const safe: FuzzOptions = {};
  fuzzIt(
    'forwarder-mixed',
    safe,
    (w) => scenarioArb(fc.oneof({ weight: 4, arbitrary: connectionOpArb(w, safe) }, { weight: 1, arbitrary: registryOpArb(w) }), safe, w, 6),
    BUDGET,
  );
  const shared: FuzzOptions = { sharedInterfaceNames: true };
  fuzzIt('forwarder-shared-ifnames', shared, (w) => scenarioArb(connectionOpArb(w, shared), shared, w, 6), KNOWN_BUDGET);
  const sameId: FuzzOptions = { concurrentSameId: true };
  fuzzIt('forwarder-same-id', sameId, (w) => scenarioArb(connectionOpArb(w, sameId), sameId, w, 6), KNOWN_BUDGET);
});
