/**
 * End-to-end test of a mesh of nodes on one host (`nsm up --nodes N`, `nsm run --node`, `nsm status`,
 * `nsm down`) with real processes, real netns and mTLS on every hop, unix and tcp. Root only (skipped with
 * the reason otherwise). What it checks: bad input names its flag and leaves nothing; 3 nodes come up, each
 * component in its node's netns with its own SPIFFE ID, nothing in the host netns; the registry and the
 * nsmgrs answer over tcp across the underlay with mTLS (and refuse plaintext); an NSE on node-3 registers
 * through its nsmgr (over tcp to the registry on node-1) under node-3's public URL; an unknown `--node`
 * names the flag and the nodes; a same-node seed connection on node-2 pings both ways and `nsm status`
 * shows nodes, pods' nodes and the connection's path; a killed forwarder is restarted in its node; a
 * second mesh (another run dir, insecure) runs beside it without a name clash; `nsm down` leaves no netns,
 * link, process or socket.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { meshTag } from '../src/local/nodes.js';
import { findTool, isRunning } from '../src/local/proc.js';
import { eventually, LocalMeshFixture, tmpLeftovers, type Result } from './local-mesh-fixture.js';

const dist = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(dist, 'src/cli/main.js');
/** The test CLI whose components crash on demand (NSMT_CRASH). */
const SHIM = join(dist, 'src/local/testdata/cli-shim.js');
const skip =
  process.getuid?.() !== 0 ? 'needs root (creates network namespaces and runs the mesh)' : !findTool('ip') || !findTool('ethtool') ? 'needs iproute2 (ip) and ethtool' : false;
const CIDR = '10.251.7.0/24';
const ip = (i: number) => `10.251.7.${i}`;

function nsm(args: string[], opts: { env?: Record<string, string>; netns?: string; cli?: string } = {}): Result {
  const argv = [process.execPath, opts.cli ?? MAIN, ...args];
  const [cmd, ...rest] = opts.netns ? ['ip', 'netns', 'exec', opts.netns, ...argv] : argv;
  const r = spawnSync(cmd, rest, { encoding: 'utf8', timeout: 90_000, env: { ...process.env, NSM_RUN_DIR: '', ...opts.env } });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function must(args: string[], opts: { env?: Record<string, string>; netns?: string } = {}): Result {
  const r = nsm(args, opts);
  assert.equal(r.code, 0, `nsm ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

const fixtures: LocalMeshFixture[] = [];
const fixture = (prefix: string) => {
  const f = new LocalMeshFixture(prefix, (args) => nsm(args));
  fixtures.push(f);
  return f;
};
after(() => {
  for (const f of fixtures) f.cleanup();
});

const tagged = (tag: string) => readdirSync('/run/netns').filter((n) => n.startsWith(`${tag}-`));
const netnsIno = (name: string) => statSync(`/run/netns/${name}`).ino;
const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
const hostLinks = () => (JSON.parse(spawnSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' }).stdout) as Array<{ ifname: string; ifalias?: string }>);
const socketsUnder = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((n) => {
    try {
      return statSync(join(dir, n)).isSocket();
    } catch {
      return false;
    }
  });

describe('a mesh of nodes on one host', { skip, concurrency: false }, () => {
  test('bad --nodes, --underlay-cidr and --node name the flag and leave nothing', { timeout: 60_000 }, () => {
    const f = fixture('nb');
    try {
      const tag = meshTag(f.dir);
      const cases: Array<[string[], RegExp]> = [
        [['--nodes', '0'], /--nodes: expected a whole number from 1 to 8 \(got "0"\)/],
        [['--nodes', '99'], /--nodes: .*\(got "99"\)/],
        [['--nodes', '2', '--underlay-cidr', '10.251.7.1/24'], /--underlay-cidr: host bits are set/],
        [['--nodes', '2', '--underlay-cidr', '8.8.8.0/24'], /--underlay-cidr: not a private network/],
        [['--nodes', '2', '--underlay-cidr', '10.0.0.0/30'], /--underlay-cidr: prefix must be/],
        [['--underlay-cidr', CIDR], /--underlay-cidr: only with --nodes/],
      ];
      for (const [args, why] of cases) {
        const r = nsm(['up', ...args, ...f.d]);
        assert.equal(r.code, 1, `nsm up ${args.join(' ')}: ${r.stdout}`);
        assert.match(r.stderr, why);
        assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
      }
      for (const [n, why] of [['1', /--nodes: expected a whole number from 2 to 8: the example puts the NSE on node-2 \(got "1"\)/], ['9', /--nodes: expected a whole number from 1 to 8 \(got "9"\)/]] as const) {
        const r = nsm(['example', 'dataplane-interrupt', '--nodes', n, ...f.d]);
        assert.equal(r.code, 1, r.stdout);
        assert.match(r.stderr, why);
      }
      assert.deepEqual(tagged(tag), [], 'no netns of this run dir');
      assert.equal(existsSync(join(f.dir, 'mesh.json')), false, 'no mesh state');
      assert.deepEqual(f.running(), [], 'nothing started');
    } finally {
      f.cleanup();
    }
  });

  // Runs once the forwarders have remote mechanisms (VXLAN, WireGuard; issue 15): until then the NSC on node-1
  // cannot reach the NSE on node-2 (forwarder-2 refuses the remote hop) and this test fails, reported as todo.
  test('nsm example dataplane-interrupt --nodes 2: the seed across nodes, every step passes', { timeout: 240_000, todo: 'needs the remote mechanisms in the forwarder' }, () => {
    const f = fixture('nx');
    try {
      const r = spawnSync(process.execPath, [MAIN, 'example', 'dataplane-interrupt', '--nodes', '2', ...f.d], { encoding: 'utf8', timeout: 220_000, env: { ...process.env, NSM_RUN_DIR: '' } });
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /nsm-1 is up in nsc-kernel on node-1; path nsc-kernel -> nsmgr-node-1 -> forwarder-node-1\.nsm[0-9a-f]{6} -> nsmgr-node-2 -> forwarder-node-2\.nsm[0-9a-f]{6} -> nse-kernel \(6 segments\)/);
      assert.match(r.stdout, /✔ every step passed \(13 steps\)/);
      assert.deepEqual(tagged(meshTag(f.dir)), [], 'the example stopped the mesh it started');
    } finally {
      f.cleanup();
    }
  });

  test('a crash-looping forwarder: up fails naming it, and rolls back the nodes and the underlay', { timeout: 90_000 }, () => {
    const f = fixture('nc');
    try {
      const r = nsm(['up', '--nodes', '2', ...f.d], { env: { NSMT_CRASH: 'forwarder' }, cli: SHIM });
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /node-[12]\/forwarder keeps exiting during start/);
      assert.match(r.stderr, /crashing on purpose/, 'the tail of its log');
      assert.deepEqual(tagged(meshTag(f.dir)), [], 'node and underlay netns deleted');
      assert.deepEqual(f.running().map((x) => x.pid), [], 'rolled back');
      assert.deepEqual(socketsUnder(f.dir), [], 'no socket left');
    } finally {
      f.cleanup();
    }
  });

  test('up --nodes 3: nodes, tcp with mTLS, pods on nodes, a same-node connection, status, restart, a second mesh, down', { timeout: 300_000 }, async () => {
    const f = fixture('nd');
    const g = fixture('ne');
    const d = f.d;
    try {
      const tag = meshTag(f.dir);
      const up = must(['up', '--nodes', '3', '--underlay-cidr', CIDR, ...d]);
      assert.match(up.stdout, new RegExp(`node-3: netns ${tag}-node-3, ${ip(3).replace(/\./g, '\\.')}`));

      // Three nodes, seven components, each in its node's netns with its node's SPIFFE ID.
      let s = f.status();
      assert.deepEqual(
        s.nodes.map((n) => [n.name, n.netns, n.netnsExists, n.address, n.nsmgr, n.forwarder, n.nsmgrUrl]),
        [1, 2, 3].map((i) => [`node-${i}`, `${tag}-node-${i}`, true, ip(i), 'up', 'up', `tcp://${ip(i)}:5001`]),
      );
      assert.deepEqual(s.underlay, { netns: `${tag}-ul`, netnsExists: true, bridge: 'br0', cidr: CIDR });
      assert.deepEqual(
        s.components.map((c) => [c.id, c.state, c.spiffeId]),
        [
          ['registry', 'up', 'spiffe://nsm.local/node/node-1/registry'],
          ...[1, 2, 3].map((i) => [`node-${i}/nsmgr`, 'up', `spiffe://nsm.local/node/node-${i}/nsmgr`]),
          ...[1, 2, 3].map((i) => [`node-${i}/forwarder`, 'up', `spiffe://nsm.local/node/node-${i}/forwarder`]),
        ],
      );
      const comps = f.state()!.components;
      for (const [id, c] of Object.entries(comps)) {
        const node = id === 'registry' ? 'node-1' : id.split('/')[0];
        assert.equal(statSync(`/proc/${c!.pid}/ns/net`).ino, netnsIno(`${tag}-${node}`), `${id} runs in ${tag}-${node}`);
      }
      const fwd2 = environ(comps['node-2/forwarder']!.pid);
      for (const e of [`NSM_TUNNEL_IP=${ip(2)}`, 'NODE_NAME=node-2', `NSM_CONNECT_TO=unix://${join(f.dir, 'nodes/node-2/nsm.io.sock')}`]) assert.ok(fwd2.includes(e), e);
      assert.ok(environ(comps['node-3/nsmgr']!.pid).includes(`NSM_REGISTRY_URL=tcp://${ip(1)}:5002`));
      assert.ok(environ(comps['node-1/nsmgr']!.pid).includes(`NSM_REGISTRY_URL=unix://${join(f.dir, 'registry.sock')}`));
      // Nothing of the underlay in the host netns.
      assert.ok(!spawnSync('ip', ['-4', 'addr'], { encoding: 'utf8' }).stdout.includes('10.251.7.'), 'no underlay address in the host netns');
      assert.ok(!spawnSync('ip', ['-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }).stdout.includes('10.251.7.'), 'no underlay route in the host netns');
      assert.ok(!hostLinks().some((l) => l.ifalias?.startsWith('nsm-mesh:')), 'no underlay link in the host netns');
      const tx = spawnSync('ip', ['netns', 'exec', `${tag}-node-2`, 'ethtool', '-k', 'ul0'], { encoding: 'utf8' }).stdout;
      assert.match(tx, /^tx-checksumming: off/m, 'tx offload off on the node end');

      // tcp across the underlay, with mTLS: the registry on node-1 and nsmgr on node-2, from node-3; plaintext is refused.
      assert.match(must(['health', '--url', `tcp://${ip(1)}:5002`, '--timeout', '5s', ...d], { netns: `${tag}-node-3` }).stdout, /SERVING \(spiffe:\/\/nsm\.local\/node\/node-1\/registry\)/);
      assert.match(must(['health', '--url', `tcp://${ip(2)}:5001`, '--timeout', '5s', ...d], { netns: `${tag}-node-3` }).stdout, /SERVING \(spiffe:\/\/nsm\.local\/node\/node-2\/nsmgr\)/);
      const plain = nsm(['health', '--url', `tcp://${ip(2)}:5001`, '--timeout', '2s', ...d], { netns: `${tag}-node-3`, env: { NSM_INSECURE: 'true' } });
      assert.equal(plain.code, 1, 'a plaintext client is refused');

      // An NSE on node-3 registers through its nsmgr (which reaches the registry over tcp) under node-3's public URL.
      const nse3 = f.pod('nse3');
      must(['run', 'nse', '--pod', nse3, '--node', 'node-3', ...d, '-e', 'NSM_SERVICE_NAMES=nsmt-nd-svc3', '-e', 'NSM_CIDR_PREFIX=172.16.3.100/31', '--wait', '--timeout', '30s']);
      s = f.status();
      assert.deepEqual(s.endpoints.filter((e) => e.name === nse3).map((e) => e.url), [`tcp://${ip(3)}:5001`]);
      assert.ok(environ(f.state()!.pods[nse3]!.processes[0]!.pid).includes(`NSM_CONNECT_TO=unix://${join(f.dir, 'nodes/node-3/nsm.io.sock')}`));

      // An unknown node: the flag, the value and the nodes; nothing created.
      const ghost = f.pod('ghost');
      const bad = nsm(['run', 'nsc', '--pod', ghost, '--node', 'node-4', ...d]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /--node: no such node in this mesh; its nodes: node-1, node-2, node-3 \(got "node-4"\)/);
      assert.equal(existsSync(`/run/netns/${ghost}`), false, 'no pod netns created');
      assert.equal(f.state()!.pods[ghost], undefined);

      // A same-node seed connection on node-2 (local KERNEL mechanism through forwarder-2 in node-2's netns).
      const nse2 = f.pod('nse2');
      const nsc2 = f.pod('nsc2');
      must(['run', 'nse', '--pod', nse2, '--node', 'node-2', ...d, '-e', 'NSM_SERVICE_NAMES=nsmt-nd-svc2', '-e', 'NSM_CIDR_PREFIX=172.16.1.100/31', '--wait', '--timeout', '30s']);
      must(['run', 'nsc', '--pod', nsc2, '--node', 'node-2', ...d, '-e', 'NSM_NETWORK_SERVICES=kernel://nsmt-nd-svc2/nsm-1', '--wait', '--timeout', '30s']);
      for (const [from, to] of [[nsc2, '172.16.1.100'], [nse2, '172.16.1.101']]) {
        const p = spawnSync('ip', ['netns', 'exec', from, 'ping', '-c', '3', '-i', '0.2', '-W', '2', to], { encoding: 'utf8' });
        assert.equal(p.status, 0, `ping ${from} -> ${to}: ${p.stdout}${p.stderr}`);
      }
      s = await eventually('the connection in status', () => {
        const st = f.status();
        return st.connections.length === 1 && st;
      });
      const conn = s.connections[0];
      assert.deepEqual(conn.nodes, ['node-2']);
      assert.deepEqual(conn.segments.map((g) => g.name), [nsc2, 'nsmgr-node-2', `forwarder-node-2.${tag}`, nse2]);
      assert.equal(conn.segments[0].mechanism, 'KERNEL');
      assert.deepEqual(
        s.pods.map((p) => [p.pod, p.node, p.component, p.running]).sort(),
        [
          [nse3, 'node-3', 'nse', true],
          [nse2, 'node-2', 'nse', true],
          [nsc2, 'node-2', 'nsc', true],
        ].sort(),
      );
      const table = must(['status', ...d]).stdout;
      assert.match(table, /^NODE\s+NETNS\s+ADDRESS\s+NSMGR\s+FORWARDER\s+NSMGR URL$/m);
      assert.match(table, new RegExp(`^${nsc2}\\s+node-2\\s+nsc`, 'm'));

      // kill -9 node-2's forwarder: restarted in node-2's netns with the same env.
      const old = f.state()!.components['node-2/forwarder']!;
      process.kill(old.pid, 'SIGKILL');
      await eventually('forwarder of node-2 restarted and up', () => {
        const st = f.status();
        const c = st.components.find((x) => x.id === 'node-2/forwarder')!;
        return c.restarts === 1 && c.state === 'up' && c.pid !== old.pid;
      }, 30_000);
      const again = f.state()!.components['node-2/forwarder']!;
      assert.equal(statSync(`/proc/${again.pid}/ns/net`).ino, netnsIno(`${tag}-node-2`));
      assert.ok(environ(again.pid).includes(`NSM_TUNNEL_IP=${ip(2)}`));

      // A second mesh beside it: another run dir, its own netns names, the default underlay, insecure.
      const tag2 = meshTag(g.dir);
      assert.notEqual(tag2, tag);
      must(['up', '--nodes', '1', '--insecure', ...g.d]);
      const s2 = g.status();
      assert.equal(s2.security, 'insecure');
      assert.deepEqual(s2.nodes.map((n) => [n.netns, n.nsmgr, n.forwarder]), [[`${tag2}-node-1`, 'up', 'up']]);
      assert.ok(s2.components.every((c) => c.security === 'insecure'), JSON.stringify(s2.components));
      assert.ok(environ(g.state()!.components['node-1/forwarder']!.pid).includes(`NSM_NAME=forwarder-node-1.${tag2}`), 'forwarder names (data-plane scopes) differ per mesh');
      must(['health', '--url', `tcp://${s2.nodes[0].address}:5001`, ...g.d], { netns: `${tag2}-node-1`, env: { NSM_INSECURE: 'true' } });
      must(['down', ...g.d]);
      assert.deepEqual(tagged(tag2), []);
      assert.equal(f.status().up, true, 'the first mesh still runs');

      // A wireguard-go in node-2's netns, as a forwarder starts one for a WireGuard tunnel (UAPI socket nsmwg*.sock):
      // down stops it (found by its netns, not its name) and removes its socket.
      const wgIf = `nsmwgt${process.pid % 100000}`;
      const wgSock = `/var/run/wireguard/${wgIf}.sock`;
      let wgPid: number | undefined;
      if (findTool('wireguard-go')) {
        const wg = spawnSync('ip', ['netns', 'exec', `${tag}-node-2`, 'wireguard-go', wgIf], { encoding: 'utf8', env: { ...process.env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' } });
        assert.equal(wg.status, 0, wg.stderr);
        await eventually('wireguard-go UAPI socket', () => existsSync(wgSock));
        const node2 = netnsIno(`${tag}-node-2`);
        wgPid = readdirSync('/proc')
          .filter((p) => /^\d+$/.test(p))
          .map(Number)
          .find((p) => {
            try {
              return statSync(`/proc/${p}/ns/net`).ino === node2 && readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes(wgIf);
            } catch {
              return false;
            }
          });
        assert.ok(wgPid, 'wireguard-go runs in node-2');
      }

      // down: no netns, process, socket or link of the mesh left.
      const recorded = f.running();
      assert.ok(recorded.length >= 11, `supervisor, 7 components and 3 pod processes are recorded (${recorded.length})`);
      const down = must(['down', ...d]);
      assert.match(down.stdout, new RegExp(`deleted node netns ${tag}-node-1, ${tag}-node-2, ${tag}-node-3, ${tag}-ul`));
      assert.match(down.stdout, /mesh is down/);
      if (wgPid !== undefined) {
        assert.match(down.stdout, new RegExp(`stopping pid ${wgPid} \\(wireguard-go ${wgIf}\\) in netns ${tag}-node-2`));
        assert.equal(existsSync(`/proc/${wgPid}/cmdline`) && readFileSync(`/proc/${wgPid}/cmdline`, 'utf8').includes(wgIf), false, 'wireguard-go stopped');
        assert.equal(existsSync(wgSock), false, 'its UAPI socket removed');
      }
      assert.deepEqual(recorded.filter((x) => isRunning(x)).map((x) => x.pid), [], 'no recorded process left');
      assert.deepEqual(tagged(tag), [], 'no node or underlay netns left');
      for (const p of [nse3, nse2, nsc2]) assert.equal(existsSync(`/run/netns/${p}`), false, `pod ${p} deleted`);
      assert.deepEqual(socketsUnder(f.dir), [], 'no socket left');
      assert.equal(existsSync(join(f.dir, 'nodes')), false, 'node socket dirs removed');
      assert.ok(!hostLinks().some((l) => l.ifalias?.startsWith('nsm-ts:') || l.ifalias?.startsWith('nsm-mesh:')), 'no link of ours in the host netns');
      assert.deepEqual(tmpLeftovers([nse3, nse2]), [], 'the nses removed their temp dirs');
      assert.match(must(['status', ...d]).stdout, /mesh is not up/);
    } finally {
      g.cleanup();
      f.cleanup();
      rmSync(`/var/run/wireguard/nsmwgt${process.pid % 100000}.sock`, { force: true });
    }
  });
});
