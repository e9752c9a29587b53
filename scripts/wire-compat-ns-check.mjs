#!/usr/bin/env node
// Upstream wire-compatibility check for the NetworkService and MonitorConnection APIs.
//
// Loads upstream NSM's OWN networkservice protos (connection.proto, connectioncontext.proto,
// networkservice.proto — obtained separately; this project ships none of upstream's files) with
// @grpc/proto-loader, starts `nsm nse` on a temp unix socket, and drives it with that client:
// MonitorConnections (initial state), Request with a kernel preference (path, ids, addresses, routes,
// mechanism, state), the monitor UPDATE, a re-Request with the returned connection (same ids), Close and
// the monitor DELETE. Prints PASS/FAIL per step; exit 0 only if all pass.
//
// Usage: node scripts/wire-compat-ns-check.mjs --upstream-protos DIR
//   DIR  the api repo checkout (DIR/pkg/api/networkservice/*.proto) or a directory holding the three files
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const dirArg = args[args.indexOf('--upstream-protos') + 1];
if (!args.includes('--upstream-protos') || !dirArg) {
  process.stderr.write('usage: node scripts/wire-compat-ns-check.mjs --upstream-protos DIR\n');
  process.exit(2);
}
const protoDir = [join(dirArg, 'pkg/api/networkservice'), join(dirArg, 'networkservice'), dirArg].find((d) => existsSync(join(d, 'networkservice.proto')));
if (!protoDir) {
  process.stderr.write(`no networkservice.proto under ${dirArg}\n`);
  process.exit(2);
}

const def = protoLoader.loadSync(['networkservice.proto', 'connection.proto'], { includeDirs: [protoDir], keepCase: true, longs: Number, enums: String, defaults: true });
const pkg = grpc.loadPackageDefinition(def);
const work = mkdtempSync(join(tmpdir(), 'nsm-wire-ns-'));
const sock = join(work, 'nse.sock');
const nse = spawn(process.execPath, [join(root, 'dist/src/cli/main.js'), 'nse'], {
  env: { ...process.env, NSM_INSECURE: 'true', NSM_NAME: 'nse-wire', NSM_LISTEN_ON: `unix://${sock}`, NSM_CONNECT_TO: `unix://${join(work, 'no-nsmgr.sock')}`, NSM_CIDR_PREFIX: '172.16.1.100/31', NSM_SERVICE_NAMES: 'wire', NSM_LOG_LEVEL: 'warn' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
let failures = 0;
const step = (ok, what, detail = '') => {
  if (!ok) failures++;
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${what}${detail ? `  (${detail})` : ''}`);
};
const call = (client, method, msg) => new Promise((res, rej) => client[method](msg, (err, out) => (err ? rej(err) : res(out))));

try {
  for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
  console.log(`upstream protos: ${protoDir}\nendpoint: unix://${sock} (spawned nsm nse)`);
  const ns = new pkg.networkservice.NetworkService(`unix://${sock}`, grpc.credentials.createInsecure());
  const mon = new pkg.connection.MonitorConnection(`unix://${sock}`, grpc.credentials.createInsecure());
  const events = [];
  const stream = mon.MonitorConnections({ path_segments: [] });
  stream.on('data', (e) => events.push(e));
  stream.on('error', () => undefined);
  await new Promise((r) => setTimeout(r, 300));
  step(events[0]?.type === 'INITIAL_STATE_TRANSFER' && Object.keys(events[0].connections).length === 0, 'MonitorConnections starts with an empty INITIAL_STATE_TRANSFER');

  const req = {
    connection: { id: 'nsc-0', network_service: 'wire', labels: { app: 'wire' }, path: { index: 0, path_segments: [{ name: 'nsc', id: 'nsc-0' }] } },
    mechanism_preferences: [{ cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'nsm-1', inodeURL: 'inode://4/4026531840' } }],
  };
  const conn = await call(ns, 'Request', req);
  const segs = conn.path?.path_segments ?? [];
  step(conn.id === 'nsc-0' && conn.path.index === 0 && segs.length === 2 && segs[0].name === 'nsc' && segs[1].name === 'nse-wire' && segs[1].id !== '', 'Request: path [nsc, nse-wire], index 0, id kept, endpoint segment has its own id', segs.map((s) => `${s.name}:${s.id}`).join(' '));
  step(segs[1].token !== '' && segs[1].expires?.seconds > 0, 'Request: the endpoint filled its segment token and expires');
  const ipc = conn.context?.ip_context;
  step(ipc?.src_ip_addrs?.[0] === '172.16.1.101/32' && ipc?.dst_ip_addrs?.[0] === '172.16.1.100/32', 'Request: src 172.16.1.101/32 (NSC side), dst 172.16.1.100/32 (NSE side)', `${ipc?.src_ip_addrs} / ${ipc?.dst_ip_addrs}`);
  step(ipc?.src_routes?.[0]?.prefix === '172.16.1.100/32' && ipc?.dst_routes?.[0]?.prefix === '172.16.1.101/32', 'Request: upstream routes (src_routes → dst, dst_routes → src)');
  step(conn.mechanism?.type === 'KERNEL' && conn.mechanism?.cls === 'LOCAL' && conn.mechanism.parameters?.name && conn.mechanism.parameters?.inodeURL, 'Request: KERNEL mechanism selected with name and inodeURL', JSON.stringify(conn.mechanism?.parameters));
  step(conn.state === 'UP' && conn.labels?.app === 'wire', 'Request: state UP, labels kept');
  await new Promise((r) => setTimeout(r, 200));
  const upd = events.find((e) => e.type === 'UPDATE');
  step(!!upd && Object.values(upd.connections).some((c) => c.path.path_segments[0].id === 'nsc-0'), 'MonitorConnections: UPDATE for the connection');

  const again = await call(ns, 'Request', { connection: conn, mechanism_preferences: req.mechanism_preferences });
  step(again.path.path_segments[1].id === segs[1].id && again.context.ip_context.src_ip_addrs[0] === '172.16.1.101/32', 're-Request with the returned connection keeps ids and addresses (refresh)');

  await call(ns, 'Close', again);
  await new Promise((r) => setTimeout(r, 200));
  step(events.some((e) => e.type === 'DELETE'), 'Close: MonitorConnections sends DELETE');
  const third = await call(ns, 'Request', req);
  step(third.context.ip_context.src_ip_addrs[0] === '172.16.1.101/32', 'after Close the addresses are free again');
  await call(ns, 'Close', third);
  stream.cancel();
  // not ns.close(): on a client of NetworkService that name is the NSM Close RPC
  grpc.Client.prototype.close.call(ns);
  grpc.closeClient(mon);
} catch (err) {
  step(false, 'unexpected error', err.message);
} finally {
  nse.kill('SIGTERM');
  await new Promise((r) => nse.once('exit', r));
  rmSync(work, { recursive: true, force: true });
}
console.log(failures === 0 ? 'PASS: all steps' : `FAIL: ${failures} step(s)`);
process.exit(failures === 0 ? 0 : 1);
