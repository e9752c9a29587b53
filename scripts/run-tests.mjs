#!/usr/bin/env node
// Runs the whole suite on compiled output: unit + sandbox tests (dist/src/**/*.test.js) in parallel,
// then end-to-end tests on real network namespaces (dist/test/**/*.test.js) one file at a time.
// Afterwards it checks the machine for leftovers (netns, host links, processes from this checkout) and
// fails if any test left something behind, or if no test ran at all.
import { spawnSync, execFileSync } from 'node:child_process';
import { readdirSync, statSync, readFileSync } from 'node:fs';
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

// Arguments match the path inside the checkout (so a checkout under /work/fuzz does not match `fuzz` everywhere).
const filter = (files) => (only.length ? files.filter((f) => only.some((o) => relative(root, f).includes(o))) : files);
const unit = filter(find(join(root, 'dist/src')));
const e2e = filter(find(join(root, 'dist/test')));
const before = { netns: new Set(netnsList()), links: new Set(hostLinks()) };

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
const procs = ourProcesses();
if (procs.length) leftovers.push(`processes:\n  ${procs.join('\n  ')}`);
if (leftovers.length) {
  console.log(`# LEAK CHECK FAILED — the suite left behind:\n# ${leftovers.join('\n# ')}`);
  status = status || 1;
} else {
  console.log('# leak check: no netns, host link or process left behind');
}
if (totals.tests === 0) {
  console.log('# no test ran: failing');
  status = 1;
}
console.log(`tests: ${totals.pass} passed, ${totals.fail} failed, ${totals.skipped} skipped`);
process.exit(status);
