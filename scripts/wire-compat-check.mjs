#!/usr/bin/env node
// Upstream wire-compatibility check for `nsm registry`.
//
// Loads upstream NSM's OWN registry.proto (obtained separately by the user; this project ships none
// of upstream's files) with @grpc/proto-loader + @grpc/grpc-js, i.e. a client generated from upstream's
// definitions, and drives an nsm-ts registry with it: Register, Find, Find+watch, deletion seen on
// Unregister and on expiry, NS payload default. Prints PASS/FAIL per step; exit 0 only if all pass.
//
// Usage:
//   node scripts/wire-compat-check.mjs --upstream-protos DIR [--url URL] [--expire-period 1s] [--in-process]
//     DIR   the api repo checkout (DIR/pkg/api/registry/registry.proto) or a directory holding registry.proto
//     --url            an already running registry (its NSM_EXPIRE_PERIOD should be short: pass it as --expire-period)
//     without --url    starts `node dist/src/cli/main.js registry` on a temp unix socket with NSM_EXPIRE_PERIOD=--expire-period
//     --in-process     instead of spawning the CLI, starts startRegistry() from dist in this process
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  const out = { expirePeriod: '1s', inProcess: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--upstream-protos') out.protos = val();
    else if (a === '--url') out.url = val();
    else if (a === '--expire-period') out.expirePeriod = val();
    else if (a === '--in-process') out.inProcess = true;
    else if (a === '-h' || a === '--help') usage();
    else usage(`unknown argument ${a}`);
  }
  if (!out.protos) usage('--upstream-protos DIR is required');
  return out;
}

function usage(msg) {
  if (msg) process.stderr.write(`wire-compat-check: ${msg}\n`);
  process.stderr.write('usage: node scripts/wire-compat-check.mjs --upstream-protos DIR [--url URL] [--expire-period 1s] [--in-process]\n');
  process.exit(2);
}

function durationMs(s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(s);
  if (!m) usage(`bad duration ${s} (use e.g. 500ms, 1s)`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2]];
}

function findRegistryProto(dir) {
  for (const p of [join(dir, 'pkg/api/registry/registry.proto'), join(dir, 'registry/registry.proto'), join(dir, 'registry.proto')]) {
    if (existsSync(p)) return p;
  }
  usage(`no registry.proto under ${dir} (looked for pkg/api/registry/registry.proto, registry/registry.proto, registry.proto)`);
}

function target(url) {
  if (url.startsWith('unix://')) return url;
  if (url.startsWith('tcp://')) return url.slice('tcp://'.length).replace(/^:/, '127.0.0.1:');
  return url;
}

const results = [];
function report(step, ok, detail = '') {
  results.push(ok);
  process.stdout.write(`${ok ? 'PASS' : 'FAIL'}  ${step}${detail ? `  (${detail})` : ''}\n`);
}

async function step(name, fn) {
  try {
    const detail = await fn();
    report(name, true, typeof detail === 'string' ? detail : '');
  } catch (err) {
    report(name, false, err instanceof Error ? err.message : String(err));
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function unary(client, method, req, timeoutMs = 5000) {
  return new Promise((res, rej) => {
    client[method](req, { deadline: new Date(Date.now() + timeoutMs) }, (err, resp) => (err ? rej(err) : res(resp)));
  });
}

function findAll(client, query, timeoutMs = 5000) {
  return new Promise((res, rej) => {
    const out = [];
    const call = client.Find(query, { deadline: new Date(Date.now() + timeoutMs) });
    call.on('data', (d) => out.push(d));
    call.on('error', rej);
    call.on('end', () => res(out));
  });
}

/** A Find(watch) stream with `next(pred, timeoutMs)` that waits for a matching response. */
function watch(client, query) {
  const queue = [];
  let waiter;
  let failure;
  const call = client.Find({ ...query, watch: true });
  call.on('data', (d) => {
    queue.push(d);
    waiter?.();
  });
  call.on('error', (err) => {
    if (err.code !== grpc.status.CANCELLED) failure = err;
    waiter?.();
  });
  return {
    async next(pred, timeoutMs) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const i = queue.findIndex(pred);
        if (i >= 0) return queue.splice(i, 1)[0];
        if (failure) throw failure;
        const left = end - Date.now();
        if (left <= 0) throw new Error(`no matching watch event within ${timeoutMs} ms (got ${JSON.stringify(queue)})`);
        await new Promise((r) => {
          const t = setTimeout(r, left);
          waiter = () => {
            clearTimeout(t);
            r();
          };
        });
        waiter = undefined;
      }
    },
    cancel: () => call.cancel(),
  };
}

async function startRegistry(opts) {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-wire-'));
  const sock = join(dir, 'registry.sock');
  const url = `unix://${sock}`;
  if (opts.inProcess) {
    const mod = await import(pathToFileURL(join(root, 'dist/src/components/registry/index.js')).href);
    const { silentLogger } = await import(pathToFileURL(join(root, 'dist/src/core/log.js')).href);
    const config = mod.registryConfig.parse({ NSM_INSECURE: 'true', NSM_LISTEN_ON: url, NSM_EXPIRE_PERIOD: opts.expirePeriod });
    const reg = await mod.startRegistry(config, { log: silentLogger });
    return { url, stop: async () => (await reg.stop(), rmSync(dir, { recursive: true, force: true })) };
  }
  const main = join(root, 'dist/src/cli/main.js');
  const child = spawn(process.execPath, [main, 'registry'], {
    env: { ...process.env, NSM_INSECURE: 'true', NSM_LISTEN_ON: url, NSM_EXPIRE_PERIOD: opts.expirePeriod, NSM_LOG_LEVEL: 'INFO' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise((r) => child.once('exit', (code) => r(code)));
  await new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`registry not ready after 15 s: ${stderr}`)), 15_000);
    child.stderr.on('data', (d) => {
      stderr += d.toString();
      if (/"msg":"ready"/.test(stderr)) {
        clearTimeout(t);
        res();
      }
    });
    exited.then((code) => {
      clearTimeout(t);
      rej(new Error(`registry exited with ${code} before ready: ${stderr.trim()}`));
    });
  });
  return {
    url,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 10_000))]);
      if (code === 'timeout') child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const expireMs = durationMs(opts.expirePeriod);
  const protoPath = findRegistryProto(resolve(opts.protos));
  const def = protoLoader.loadSync(protoPath, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [dirname(protoPath)],
  });
  const pkg = grpc.loadPackageDefinition(def).registry;
  assert(pkg?.NetworkServiceEndpointRegistry && pkg?.NetworkServiceRegistry, `${protoPath} does not define package registry with both services`);
  process.stdout.write(`upstream protos: ${protoPath}\n`);

  let server;
  let url = opts.url;
  if (!url) {
    server = await startRegistry(opts);
    url = server.url;
  }
  process.stdout.write(`registry: ${url}${server ? (opts.inProcess ? ' (started in process)' : ' (spawned nsm registry)') : ''}\n`);

  const creds = grpc.credentials.createInsecure();
  const nseClient = new pkg.NetworkServiceEndpointRegistry(target(url), creds);
  const nsClient = new pkg.NetworkServiceRegistry(target(url), creds);
  const suffix = Math.random().toString(36).slice(2, 8);
  const service = `wire-compat-${suffix}`;
  const nse = (name) => ({
    name,
    network_service_names: [service],
    network_service_labels: { [service]: { labels: { app: 'wire-compat' } } },
    url: 'tcp://127.0.0.1:5999',
  });
  const nameA = `wire-compat-nse-${suffix}`;
  const nameB = `wire-compat-exp-${suffix}`;
  let w;

  try {
    await step('NSE Register (upstream-encoded) returns the NSE with expiration_time and initial_registration_time', async () => {
      const r = await unary(nseClient, 'Register', nse(nameA));
      assert(r.name === nameA, `name ${r.name}`);
      assert(r.url === 'tcp://127.0.0.1:5999', `url ${r.url}`);
      assert(r.expiration_time && Number(r.expiration_time.seconds) > 0, 'expiration_time missing');
      assert(r.initial_registration_time && Number(r.initial_registration_time.seconds) > 0, 'initial_registration_time missing');
      return `expires ${r.expiration_time.seconds}s`;
    });

    await step('NSE Find (no watch) by name returns it once, deleted=false, labels intact, then ends', async () => {
      const rs = await findAll(nseClient, { network_service_endpoint: { name: nameA } });
      assert(rs.length === 1, `${rs.length} responses`);
      const got = rs[0].network_service_endpoint;
      assert(rs[0].deleted === false, 'deleted set');
      assert(got.network_service_labels?.[service]?.labels?.app === 'wire-compat', `labels ${JSON.stringify(got.network_service_labels)}`);
      assert(got.network_service_names?.[0] === service, 'network_service_names');
    });

    await step('NSE Find by network_service_names template', async () => {
      const rs = await findAll(nseClient, { network_service_endpoint: { network_service_names: [service] } });
      assert(rs.length === 1 && rs[0].network_service_endpoint.name === nameA, `${rs.length} responses`);
    });

    await step('NSE Find with watch delivers the existing NSE', async () => {
      w = watch(nseClient, { network_service_endpoint: { network_service_names: [service] } });
      await w.next((r) => r.network_service_endpoint?.name === nameA && !r.deleted, 5000);
    });

    await step('NSE Unregister is seen by the watcher as deleted=true', async () => {
      await unary(nseClient, 'Unregister', { name: nameA });
      await w.next((r) => r.network_service_endpoint?.name === nameA && r.deleted === true, 5000);
      const rs = await findAll(nseClient, { network_service_endpoint: { name: nameA } });
      assert(rs.length === 0, 'still listed after Unregister');
    });

    await step(`NSE expiry (expire period ${opts.expirePeriod}) is seen by the watcher as deleted=true`, async () => {
      const t0 = Date.now();
      await unary(nseClient, 'Register', nse(nameB));
      await w.next((r) => r.network_service_endpoint?.name === nameB && !r.deleted, 5000);
      await w.next((r) => r.network_service_endpoint?.name === nameB && r.deleted === true, expireMs + 5000);
      return `after ${Date.now() - t0} ms`;
    });

    await step('NS Register without payload gets payload IP; Find; Unregister', async () => {
      const nsName = `wire-compat-ns-${suffix}`;
      const r = await unary(nsClient, 'Register', { name: nsName });
      assert(r.payload === 'IP', `payload ${JSON.stringify(r.payload)}`);
      const rs = await findAll(nsClient, { network_service: { name: nsName } });
      assert(rs.length === 1 && rs[0].network_service.payload === 'IP', `${rs.length} responses`);
      await unary(nsClient, 'Unregister', { name: nsName });
      assert((await findAll(nsClient, { network_service: { name: nsName } })).length === 0, 'NS still listed');
    });

    await step('bad NSE (empty name) is rejected with INVALID_ARGUMENT', async () => {
      try {
        await unary(nseClient, 'Register', { name: '', url: 'tcp://127.0.0.1:1' });
      } catch (err) {
        assert(err.code === grpc.status.INVALID_ARGUMENT, `code ${err.code}`);
        return;
      }
      throw new Error('accepted');
    });
  } finally {
    w?.cancel();
    nseClient.close();
    nsClient.close();
    await server?.stop();
  }

  const failed = results.filter((r) => !r).length;
  process.stdout.write(`${failed === 0 ? 'PASS' : 'FAIL'}: ${results.length - failed}/${results.length} steps\n`);
  process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((err) => {
  process.stderr.write(`wire-compat-check: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
