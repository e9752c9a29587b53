#!/usr/bin/env node
// Runs the whole suite on compiled output: unit + sandbox tests (dist/src/**/*.test.js) in parallel,
// then end-to-end tests on real network namespaces (dist/test/**/*.test.js) one file at a time.
// Afterwards it checks the machine for leftovers (netns, host links, processes from this checkout; node and
// underlay netns of this checkout's meshes whose run dir is gone; vxlan/tun devices with an nsm-ts alias in any
// netns and the data plane's wireguard-go (UAPI socket /var/run/wireguard/nsmwg*.sock) that were not there
// before) and fails if any test left something behind, or if no test ran at all. It reports; it kills nothing.
import { spawnSync, execFileSync } from 'node:child_process';
import { readdirSync, readlinkSync, statSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const root = resolve(new URL('..', import.meta.url).pathname);
const only = process.argv.slice(2);

function find(dir) {
  let out = [];
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const e of entries) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(find(p));
    else if (e.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

function netnsList() {
  try { return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]).filter(Boolean); } catch { return []; }
}
function hostLinks() {
  try { return JSON.parse(execFileSync('ip', ['-j', 'link'], { encoding: 'utf8' })).map((l) => l.ifname); } catch { return []; }
}
function ourProcesses() {
  const out = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      // Started by a test of this checkout: our own programs, and any other child (SPIRE, upstream peers)
      // that inherited the NSM_TEST_ROOT the runner gives the tests.
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if ((cmd.includes(join(root, 'dist')) || env.includes(`NSM_TEST_ROOT=${root}`)) && !cmd.includes('--test')) out.push(`${pid}: ${cmd.trim()}`);
    } catch { /* gone */ }
  }
  return out;
}

// Meshes of nodes (`nsm up --nodes`): their netns are `nsm<6 hex>-node-<i>` and `nsm<6 hex>-ul`, and the underlay
// links (br0 in the underlay netns, ul0 in each node) carry `nsm-mesh:{"run":<run dir>,"nsm":<program>}`.
const INFRA_NETNS_RE = /^nsm[0-9a-f]{6}-(node-[1-9][0-9]*|ul)$/;
function meshOfNetns(name) {
  const dev = name.endsWith('-ul') ? 'br0' : 'ul0';
  try {
    const [l] = JSON.parse(execFileSync('ip', ['-n', name, '-j', 'link', 'show', dev], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
    return l?.ifalias?.startsWith('nsm-mesh:') ? JSON.parse(l.ifalias.slice('nsm-mesh:'.length)) : undefined;
  } catch { return undefined; }
}
/** Node and underlay netns of this checkout's meshes whose run dir has no mesh state (nobody runs them any more). */
function ourInfraNetns() {
  return netnsList().filter((n) => INFRA_NETNS_RE.test(n)).flatMap((n) => {
    const m = meshOfNetns(n);
    if (!m?.nsm?.startsWith(join(root, 'dist'))) return [];
    let alive = false;
    try { statSync(join(m.run, 'mesh.json')); alive = true; } catch { /* none */ }
    return alive ? [] : [`${n} (run dir ${m.run})`];
  });
}
/** One process per network namespace (netns inode → pid), plus the host's. */
function netnsPids() {
  const out = new Map();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try { const ino = statSync(`/proc/${pid}/ns/net`).ino; if (!out.has(ino)) out.set(ino, pid); } catch { /* gone */ }
  }
  return out;
}
/** vxlan and tun devices with an nsm-ts alias in any network namespace, as `netns-inode/ifname (alias)`. */
function tunnelDevices() {
  const out = [];
  for (const [ino, pid] of netnsPids()) {
    let links;
    try { links = JSON.parse(execFileSync('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', '-d', '-j', 'link', 'show'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })); } catch { continue; }
    for (const l of links) {
      const kind = l.linkinfo?.info_kind;
      if ((kind === 'vxlan' || kind === 'tun') && l.ifalias?.startsWith('nsm-ts:')) out.push(`netns ${ino}/${l.ifname} (${kind}, ${l.ifalias})`);
    }
  }
  return out;
}
/** wireguard-go UAPI sockets of the data plane (/var/run/wireguard/nsmwg*.sock) and the processes listening on them. */
function wireguardLeftovers() {
  const dir = '/var/run/wireguard';
  let socks = [];
  try { socks = readdirSync(dir).filter((n) => n.startsWith('nsmwg') && n.endsWith('.sock')).map((n) => join(dir, n)); } catch { return []; }
  if (socks.length === 0) return [];
  const byNetns = new Map();
  const held = new Set();
  const out = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const ino = statSync(`/proc/${pid}/ns/net`).ino;
      if (!byNetns.has(ino)) {
        const table = new Map();
        for (const line of readFileSync(`/proc/${pid}/net/unix`, 'utf8').split('\n').slice(1)) {
          const f = line.trim().split(/\s+/);
          if (f.length >= 8 && socks.includes(f[7])) table.set(f[6], f[7]);
        }
        byNetns.set(ino, table);
      }
      const table = byNetns.get(ino);
      if (table.size === 0) continue;
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        let link = '';
        try { link = readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
        const m = /^socket:\[(\d+)\]$/.exec(link);
        if (m && table.has(m[1])) {
          const path = table.get(m[1]);
          held.add(path);
          out.push(`pid ${pid} (${readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim()}) on ${path}`);
          break;
        }
      }
    } catch { /* gone */ }
  }
  return [...out, ...socks.filter((s) => !held.has(s)).map((s) => `${s} (nobody listens)`)];
}

// Arguments match the path inside the checkout (so a checkout under /work/fuzz does not match `fuzz` everywhere).
const filter = (files) => (only.length ? files.filter((f) => only.some((o) => relative(root, f).includes(o))) : files);
const unit = filter(find(join(root, 'dist/src')));
const e2e = filter(find(join(root, 'dist/test')));
const before = { netns: new Set(netnsList()), links: new Set(hostLinks()), tunnels: new Set(tunnelDevices()), wireguard: new Set(wireguardLeftovers()) };

const totals = { tests: 0, pass: 0, fail: 0, skipped: 0 };
function run(files, concurrency) {
  if (files.length === 0) return 0;
  const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, '--test-reporter=tap', ...files], {
    cwd: root, encoding: 'utf8', maxBuffer: 512 * 1024 * 1024, env: { ...process.env, NSM_TEST_ROOT: root },
  });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  for (const k of ['tests', 'pass', 'fail', 'skipped']) {
    const m = new RegExp(`^# ${k} (\\d+)$`, 'm').exec(r.stdout);
    if (m) totals[k] += Number(m[1]);
  }
  return r.status ?? 1;
}

if (process.getuid && process.getuid() !== 0 && e2e.length > 0) {
  console.log(`# end-to-end tests need root (network namespaces, veth); running as uid ${process.getuid()}: they will skip`);
}
let status = run(unit, 2);
status = run(e2e, 1) || status;

const leftovers = [];
const ns = netnsList().filter((n) => !before.netns.has(n));
if (ns.length) leftovers.push(`network namespaces: ${ns.join(' ')}`);
const links = hostLinks().filter((l) => !before.links.has(l));
if (links.length) leftovers.push(`host links: ${links.join(' ')}`);
const infra = ourInfraNetns();
if (infra.length) leftovers.push(`node/underlay netns of this checkout's meshes: ${infra.join(' ')}`);
const tunnels = tunnelDevices().filter((t) => !before.tunnels.has(t));
if (tunnels.length) leftovers.push(`tunnel devices:\n  ${tunnels.join('\n  ')}`);
const wg = wireguardLeftovers().filter((w) => !before.wireguard.has(w));
if (wg.length) leftovers.push(`wireguard-go of the data plane (nsmwg*):\n  ${wg.join('\n  ')}`);
const procs = ourProcesses();
if (procs.length) leftovers.push(`processes:\n  ${procs.join('\n  ')}`);
if (leftovers.length) {
  console.log(`# LEAK CHECK FAILED — the suite left behind:\n# ${leftovers.join('\n# ')}`);
  status = status || 1;
} else {
  console.log('# leak check: no netns (pods, nodes, underlay), host link, tunnel device, wireguard-go or process left behind');
  if (before.tunnels.size || before.wireguard.size) console.log(`# (present before the run, not counted: ${[...before.tunnels, ...before.wireguard].join('; ')})`);
}
if (totals.tests === 0) {
  console.log('# no test ran: failing');
  status = 1;
}
console.log(`tests: ${totals.pass} passed, ${totals.fail} failed, ${totals.skipped} skipped`);
process.exit(status);
