/**
 * `nsm apply -f FILE` / `nsm delete -f FILE`: register or unregister NetworkService and
 * NetworkServiceEndpoint custom resources (`apiVersion: networkservicemesh.io/v1`, the YAML upstream
 * examples give to `kubectl apply`) at a registry, printing kubectl-style lines
 * (`networkservice/dataplane-interrupt created`).
 *
 * Registry URL: `--registry-url`, else `NSM_REGISTRY_URL`, else the local mesh's registry socket
 * (`<run dir>/registry.sock`, run dir from `NSM_RUN_DIR` or the default, see `DEFAULT_REGISTRY_URL`).
 * Every file is read and validated before anything is registered; a bad document is an
 * InvalidArgumentError naming the file, the document and the field.
 *
 * Identity: `NSM_INSECURE=true` → plaintext; `SPIFFE_ENDPOINT_SOCKET` → an SVID from that Workload API
 * (SPIRE); otherwise the local mesh of the run dir: a `node/<node>/cli` SVID from its CA when it is secure
 * (root only), plaintext when it runs insecure (local/identity.ts `commandSecurity`).
 *
 * NetworkServices do not expire. NetworkServiceEndpoints registered this way DO expire (the registry's
 * expiry, 1 min by default) because nothing refreshes them: `apply` of an NSE is meant for tests and
 * manual use; real endpoints register themselves and keep their registration alive.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Command } from 'commander';
import {
  NetworkServiceEndpoint as NseFns,
  NetworkService as NsFns,
  type NetworkService,
  type NetworkServiceEndpoint,
  type NetworkServiceEndpointQuery,
  type NetworkServiceEndpointResponse,
  type NetworkServiceQuery,
  type NetworkServiceResponse,
} from '../../api/gen/registry.js';
import { registryChain } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { InvalidArgumentError, NotFoundError, NsmError, errorMessage } from '../../core/errors.js';
import { ChannelPool, parseUrl } from '../../core/transport.js';
import { action, addRunDirOption, durationOption, meshContext } from '../../local/cli.js';
import { commandSecurity } from '../../local/identity.js';
import { DEFAULT_RUN_DIR, RUN_DIR_ENV, resolveRunDir, runPaths } from '../../local/paths.js';
import { authorizeRegistryClient } from '../../registry/authorize/index.js';
import { nsConnectClient, nseConnectClient } from '../../registry/connect/index.js';
import { es256TokenGenerator } from '../../security/token.js';
import { KIND_NETWORK_SERVICE, parseCustomResources, type CustomResource } from '../../registry/cr.js';
import type { TransportSecurity } from '../../security/tls.js';

/** The local mesh's registry socket in the default run dir. */
export const DEFAULT_REGISTRY_URL = `unix://${runPaths(DEFAULT_RUN_DIR).sockets.registry}`;
export const REGISTRY_URL_ENV = 'NSM_REGISTRY_URL';
export const DEFAULT_APPLY_TIMEOUT_MS = 10_000;
/** Dial bound of one apply/delete (a registry that is not there fails fast). */
export const DEFAULT_APPLY_DIAL_TIMEOUT_MS = 3_000;

/** `--registry-url`, else `NSM_REGISTRY_URL`, else `unix://<--run-dir, NSM_RUN_DIR or the default run dir>/registry.sock`. */
export function resolveRegistryUrl(flag?: string, env: NodeJS.ProcessEnv = process.env, runDir?: string): string {
  const url = flag?.trim() || env[REGISTRY_URL_ENV]?.trim() || `unix://${runPaths(resolveRunDir(runDir, env)).sockets.registry}`;
  parseUrl(url, flag?.trim() ? '--registry-url' : env[REGISTRY_URL_ENV]?.trim() ? REGISTRY_URL_ENV : runDir ? '--run-dir' : RUN_DIR_ENV);
  return url;
}

export interface ApplyIo {
  out(line: string): void;
  err(line: string): void;
  /** Reads `-` (stdin) or a file. */
  read?(file: string): string;
}

export interface ApplyOptions {
  readonly files: readonly string[];
  readonly registryUrl: string;
  /** mTLS with an SVID, or INSECURE (see `commandSecurity`). */
  readonly security: TransportSecurity;
  readonly timeoutMs?: number;
  readonly io: ApplyIo;
  readonly signal?: AbortSignal;
}

export interface DeleteOptions extends ApplyOptions {
  readonly ignoreNotFound?: boolean;
}

const resourceName = (cr: CustomResource) => (cr.kind === KIND_NETWORK_SERVICE ? 'networkservice' : 'networkserviceendpoint');

/** Largest file (or stdin) `apply` reads: far above any NetworkService YAML, far below harm. */
export const MAX_APPLY_BYTES = 1024 * 1024;

/** Reads `-` (stdin) or a file, refusing at once what is larger than MAX_APPLY_BYTES (never reads more). */
export function readBounded(file: string, limit = MAX_APPLY_BYTES): string {
  const fd = file === '-' ? 0 : openSync(file, 'r');
  try {
    const st = fstatSync(fd);
    if (st.isFile() && st.size > limit) throw new Error(`${st.size} bytes is larger than the limit of ${limit} bytes`);
    const buf = Buffer.alloc(limit + 1);
    let n = 0;
    for (let r = 1; r > 0 && n <= limit; n += r) r = readSync(fd, buf, n, limit + 1 - n, null);
    if (n > limit) throw new Error(`larger than the limit of ${limit} bytes`);
    return buf.toString('utf8', 0, n);
  } finally {
    if (fd !== 0) closeSync(fd);
  }
}

function readAll(files: readonly string[], io: ApplyIo): CustomResource[] {
  if (files.length === 0) throw new InvalidArgumentError('-f', '', 'at least one file is required (-f FILE, or -f - for stdin)');
  const read = io.read ?? ((f: string) => readBounded(f));
  const out: CustomResource[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = read(f);
    } catch (err) {
      throw new InvalidArgumentError('-f', f, `cannot read: ${errorMessage(err)}`, { cause: err });
    }
    out.push(...parseCustomResources(text, f === '-' ? 'stdin' : f));
  }
  if (out.length === 0) throw new InvalidArgumentError('-f', files.join(','), 'no NetworkService or NetworkServiceEndpoint documents found');
  return out;
}

/**
 * A registry session: NS and NSE client chains on one channel pool — [authorize, connect] as a
 * component's registry client without heal and refresh. Over mTLS, Register/Unregister carry a path token
 * signed with the command's SVID (its identity becomes the registrant of what it registers), and the
 * path the registry answers is checked as upstream's clients do.
 */
function session(opts: ApplyOptions) {
  const pool = new ChannelPool(opts.security);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_APPLY_TIMEOUT_MS;
  const dialTimeout = Math.min(timeoutMs, DEFAULT_APPLY_DIAL_TIMEOUT_MS);
  const url = opts.registryUrl;
  const tokens = opts.security.kind === 'mtls' ? es256TokenGenerator(opts.security.source) : undefined;
  const insecure = !tokens;
  const ns = registryChain('apply-ns', [
    authorizeRegistryClient<NetworkService, NetworkServiceQuery, NetworkServiceResponse>({ pool, url }, { insecure }),
    nsConnectClient({ pool, url, tokens }, { dialTimeout }),
  ]);
  const nse = registryChain('apply-nse', [
    authorizeRegistryClient<NetworkServiceEndpoint, NetworkServiceEndpointQuery, NetworkServiceEndpointResponse>({ pool, url }, { insecure }),
    nseConnectClient({ pool, url, tokens }, { dialTimeout }),
  ]);
  const ctx = () => newContext({ signal: opts.signal, deadline: Date.now() + timeoutMs });

  async function exists(cr: CustomResource): Promise<boolean> {
    const name = cr.item.name;
    if (cr.kind === KIND_NETWORK_SERVICE) {
      for await (const r of ns.find({ networkService: NsFns.fromPartial({ name }), watch: false }, ctx())) if (r.networkService?.name === name && !r.deleted) return true;
    } else {
      for await (const r of nse.find({ networkServiceEndpoint: NseFns.fromPartial({ name }), watch: false }, ctx())) {
        if (r.networkServiceEndpoint?.name === name && !r.deleted) return true;
      }
    }
    return false;
  }

  return {
    exists,
    register: async (cr: CustomResource) => {
      if (cr.kind === KIND_NETWORK_SERVICE) await ns.register(cr.item, ctx());
      else await nse.register(cr.item, ctx());
    },
    unregister: async (cr: CustomResource) => {
      if (cr.kind === KIND_NETWORK_SERVICE) await ns.unregister(cr.item, ctx());
      else await nse.unregister(cr.item, ctx());
    },
    close: () => pool.close(),
  };
}

/** Runs every resource, kubectl-like: one failure does not stop the others; the first error is thrown at the end. */
async function each(crs: CustomResource[], io: ApplyIo, fn: (cr: CustomResource) => Promise<string>): Promise<void> {
  const errors: Error[] = [];
  for (const cr of crs) {
    try {
      io.out(await fn(cr));
    } catch (err) {
      const e = err instanceof Error ? err : new NsmError(String(err));
      if (crs.length > 1) io.err(`error: ${resourceName(cr)}/${cr.item.name}: ${e.message}`);
      errors.push(e);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new NsmError(`${errors.length} of ${crs.length} resources failed; first: ${errors[0].message}`, { cause: errors[0] });
}

/** `nsm apply`: registers every resource of the files. */
export async function runApply(opts: ApplyOptions): Promise<void> {
  const crs = readAll(opts.files, opts.io);
  if (crs.some((cr) => cr.kind !== KIND_NETWORK_SERVICE)) {
    opts.io.err('note: NetworkServiceEndpoints registered by `nsm apply` expire with the registry\'s expiry (1m by default) unless refreshed; use this for tests and manual checks');
  }
  const s = session(opts);
  try {
    await each(crs, opts.io, async (cr) => {
      const existed = await s.exists(cr);
      await s.register(cr);
      return `${resourceName(cr)}/${cr.item.name} ${existed ? 'configured' : 'created'}`;
    });
  } finally {
    s.close();
  }
}

/** `nsm delete`: unregisters every resource of the files. */
export async function runDelete(opts: DeleteOptions): Promise<void> {
  const crs = readAll(opts.files, opts.io);
  const s = session(opts);
  try {
    await each(crs, opts.io, async (cr) => {
      if (!(await s.exists(cr))) {
        if (opts.ignoreNotFound) return `${resourceName(cr)} "${cr.item.name}" not found (ignored)`;
        throw new NotFoundError(`${resourceName(cr)}s "${cr.item.name}" not found`);
      }
      await s.unregister(cr);
      return `${resourceName(cr)} "${cr.item.name}" deleted`;
    });
  } finally {
    s.close();
  }
}

/** Runs `fn` with the command's transport security (released after). */
async function withSecurity(runDir: string | undefined, env: NodeJS.ProcessEnv, fn: (security: TransportSecurity) => Promise<void>): Promise<void> {
  const ctx = meshContext(runDir);
  const sec = await commandSecurity({ paths: ctx.paths, node: ctx.hostname, env });
  try {
    await fn(sec.security);
  } finally {
    sec.close();
  }
}

const processIo: ApplyIo = {
  out: (l) => void process.stdout.write(`${l}\n`),
  err: (l) => void process.stderr.write(`${l}\n`),
};

const collect = (v: string, prev: string[]) => [...prev, v];

interface CommandOpts {
  runDir?: string;
  filename: string[];
  registryUrl?: string;
  timeout: string;
  ignoreNotFound?: boolean;
}

export function register(program: Command, io: ApplyIo = processIo, env: NodeJS.ProcessEnv = process.env): void {
  const common = (cmd: Command) =>
    addRunDirOption(cmd)
      .requiredOption('-f, --filename <file>', 'YAML file with NetworkService / NetworkServiceEndpoint resources (repeatable; - for stdin)', collect, [])
      .option('--registry-url <url>', `registry to talk to; env ${REGISTRY_URL_ENV}; default unix://<run dir>/registry.sock (${DEFAULT_REGISTRY_URL})`)
      .option('--timeout <duration>', 'bound of each registry call', `${DEFAULT_APPLY_TIMEOUT_MS / 1000}s`);

  common(
    program
      .command('apply')
      .description('register NetworkService / NetworkServiceEndpoint custom resources (kubectl-style YAML) at the registry')
      .addHelpText('after', '\nNetworkServiceEndpoints registered this way expire (registry default 1m) unless refreshed: for tests and manual use.'),
  ).action(
    action('apply', async (opts: CommandOpts) => {
      const registryUrl = resolveRegistryUrl(opts.registryUrl, env, opts.runDir);
      const timeoutMs = durationOption('--timeout', opts.timeout);
      await withSecurity(opts.runDir, env, (security) => runApply({ files: opts.filename, registryUrl, security, timeoutMs, io }));
    }),
  );

  common(program.command('delete').description('unregister NetworkService / NetworkServiceEndpoint custom resources from the registry'))
    .option('--ignore-not-found', 'do not fail for resources that are not registered')
    .action(
      action('delete', async (opts: CommandOpts) => {
        const registryUrl = resolveRegistryUrl(opts.registryUrl, env, opts.runDir);
        const timeoutMs = durationOption('--timeout', opts.timeout);
        await withSecurity(opts.runDir, env, (security) => runDelete({ files: opts.filename, registryUrl, security, timeoutMs, ignoreNotFound: opts.ignoreNotFound, io }));
      }),
    );
}
