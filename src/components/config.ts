/**
 * Env-var configuration, upstream style (`NSM_*`, Go durations, comma lists, `k:v` maps). Each component
 * declares a schema: the schema parses and validates `process.env` once (a bad value is a ConfigError
 * naming the variable and the value; the process exits 2), prints the effective config at start, and
 * generates the README env table, so docs cannot drift from code.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { MAX_CONCURRENCY, MAX_QUEUE } from '../core/admission.js';
import { ConfigError, InvalidArgumentError } from '../core/errors.js';
import { parseLogLevel, type LogLevel } from '../core/log.js';
import { parseUrl } from '../core/transport.js';
import { MIN_TOKEN_LIFETIME_MS } from '../security/token.js';
import { ENDPOINT_ENV, parseWorkloadEndpoint } from '../security/workload-client.js';

/** Lower bound of NSM_MAX_TOKEN_LIFETIME: both token generators refuse shorter lifetimes. */
export { MIN_TOKEN_LIFETIME_MS };

export interface EnvVar<T> {
  readonly name: string;
  /** Raw default (as a user would write it); undefined = required or empty. */
  readonly default?: string;
  readonly required?: boolean;
  readonly description: string;
  /** Allowed values, for the docs (e.g. `1ms–24h`); the parser enforces them. */
  readonly range?: string;
  parse(raw: string): T;
  /**
   * A rule across variables, run once every variable of the schema is parsed (e.g. SPIFFE_ENDPOINT_SOCKET
   * is needed unless NSM_INSECURE=true); throws a ConfigError naming this variable.
   */
  check?(parsed: Readonly<Record<string, unknown>>): void;
}

type Parsed<S> = { readonly [K in keyof S]: S[K] extends EnvVar<infer T> ? T : never };

export interface ConfigSchema<S extends Record<string, EnvVar<unknown>>> {
  readonly component: string;
  readonly vars: S;
  parse(env: Readonly<Record<string, string | undefined>>): Parsed<S>;
  /** `NAME=value` lines of the effective config (secrets none). */
  describe(env: Readonly<Record<string, string | undefined>>): string[];
  markdown(): string;
}

export function defineConfig<S extends Record<string, EnvVar<unknown>>>(component: string, vars: S): ConfigSchema<S> {
  const effective = (env: Readonly<Record<string, string | undefined>>, v: EnvVar<unknown>) => {
    const raw = env[v.name];
    return raw === undefined || (raw === '' && !v.default) ? v.default : raw;
  };
  return {
    component,
    vars,
    parse(env) {
      const out: Record<string, unknown> = {};
      for (const [key, v] of Object.entries(vars)) {
        const raw = effective(env, v);
        if (raw === undefined || raw === '') {
          if (v.required) throw new ConfigError(v.name, raw ?? '', `required: ${v.description}`);
        }
        // Set but empty where empty means nothing: a mistake (an unset variable gets the default).
        if (env[v.name] !== undefined && env[v.name]!.trim() === '' && v.default) {
          throw new ConfigError(v.name, env[v.name], `set but empty; unset it for the default (${v.default}) or give a value`);
        }
        try {
          out[key] = v.parse(raw ?? '');
        } catch (err) {
          if (err instanceof ConfigError) throw err;
          throw new ConfigError(v.name, raw ?? '', err instanceof InvalidArgumentError ? err.reason : (err as Error).message);
        }
      }
      for (const v of Object.values(vars)) v.check?.(out);
      return Object.freeze(out) as Parsed<S>;
    },
    describe(env) {
      return Object.values(vars).map((v) => {
        const raw = (env[v.name] ?? '') === '' ? (v.default ?? '') : env[v.name]!;
        const src = env[v.name] === undefined || env[v.name] === '' ? ' (default)' : '';
        return `${v.name}=${raw}${src}`;
      });
    },
    markdown() {
      const cell = (s: string) => s.replace(/\|/g, '\\|');
      const rows = Object.values(vars).map(
        (v) =>
          `| \`${v.name}\` | ${v.required ? '(required)' : v.default === undefined || v.default === '' ? '' : `\`${cell(v.default)}\``} | ${cell(v.description)}${v.range ? ` (${cell(v.range)})` : ''} |`,
      );
      return ['| variable | default | meaning |', '|---|---|---|', ...rows].join('\n');
    },
  };
}

// ---- Value parsers -----------------------------------------------------------------------------------

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Go duration (`200ms`, `1m30s`, `-1m`, `0`) into milliseconds. */
export function parseDuration(raw: string): number {
  const s = raw.trim();
  if (s === '0') return 0;
  const m = /^([-+]?)((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)$/.exec(s);
  if (!m) {
    if (/^[-+]?\d+(\.\d+)?$/.test(s)) throw new Error('duration without unit; write e.g. 200ms, 15s, 10m');
    throw new Error('not a duration; write e.g. 200ms, 15s, 10m');
  }
  let total = 0;
  for (const part of m[2].matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(part[1]) * DURATION_UNITS[part[2]];
  return m[1] === '-' ? -total : total;
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms !== 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms !== 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export function parseBool(raw: string): boolean {
  const s = raw.trim().toLowerCase();
  if (['true', '1', 't', 'yes'].includes(s)) return true;
  if (['false', '0', 'f', 'no', ''].includes(s)) return false;
  throw new Error('not a boolean; write true or false');
}

export function parseList(raw: string): string[] {
  return raw
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
}

/** `k1:v1,k2:v2` (also accepts `k=v`). */
export function parseLabels(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of parseList(raw)) {
    const i = item.search(/[:=]/);
    if (i <= 0) throw new Error(`label "${item}" is not key:value`);
    out[item.slice(0, i).trim()] = item.slice(i + 1).trim();
  }
  return out;
}

// ---- EnvVar builders ---------------------------------------------------------------------------------

type Opts = { default?: string; required?: boolean };

/**
 * Upper bound of every duration variable unless it names its own: long enough for any lifetime or period
 * upstream documents, short of Node's timer range (timers re-arm beyond it anyway, see core/clock).
 */
export const MAX_DURATION_MS = 24 * 3_600_000;

/** Checks that a unix listen URL's directory exists (serving never creates directories). */
function checkListenDir(name: string, url: string): string {
  const p = parseUrl(url, name);
  if (p.kind === 'unix') {
    const dir = dirname(p.path);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ConfigError(name, url, `directory ${dir} does not exist; create it or choose another path`);
  }
  return url;
}

/** Where nsmgr serves on a node and where clients, endpoints and forwarders reach it (upstream's default). */
export const DEFAULT_NSM_SOCKET = 'unix:///var/lib/networkservicemesh/nsm.io.sock';

export const env = {
  string: (name: string, description: string, o: Opts = {}): EnvVar<string> => ({ name, description, ...o, parse: (r) => r.trim() }),
  duration: (name: string, description: string, o: Opts & { min?: number; max?: number } = {}): EnvVar<number> => {
    const max = o.max ?? MAX_DURATION_MS;
    return {
      name,
      description,
      ...o,
      range: `${formatDuration(o.min ?? 0)}–${formatDuration(max)}`,
      parse: (r) => {
        const v = parseDuration(r);
        if (o.min !== undefined && v < o.min) throw new Error(`must be at least ${formatDuration(o.min)}`);
        if (v > max) throw new Error(`must be at most ${formatDuration(max)}`);
        return v;
      },
    };
  },
  bool: (name: string, description: string, o: Opts = {}): EnvVar<boolean> => ({ name, description, ...o, parse: parseBool }),
  int: (name: string, description: string, o: Opts & { min?: number; max?: number } = {}): EnvVar<number> => ({
    name,
    description,
    ...o,
    range: o.max === undefined ? (o.min === undefined ? undefined : `≥ ${o.min}`) : o.min === undefined ? `≤ ${o.max}` : `${o.min}–${o.max}`,
    parse: (r) => {
      if (!/^-?\d+$/.test(r.trim())) throw new Error('not an integer');
      const v = Number(r.trim());
      if (o.min !== undefined && v < o.min) throw new Error(`must be >= ${o.min}`);
      if (o.max !== undefined && v > o.max) throw new Error(`must be <= ${o.max}`);
      return v;
    },
  }),
  labels: (name: string, description: string, o: Opts = {}): EnvVar<Record<string, string>> => ({ name, description, ...o, parse: parseLabels }),
  list: (name: string, description: string, o: Opts = {}): EnvVar<string[]> => ({ name, description, ...o, parse: parseList }),
  /** A URL; `listen: true` for one this process serves on (a unix socket's directory must exist). */
  url: (name: string, description: string, o: Opts & { listen?: boolean } = {}): EnvVar<string> => ({
    name,
    description,
    ...o,
    parse: (r) => (r.trim() === '' ? '' : o.listen ? checkListenDir(name, checkUrl(name, r)) : checkUrl(name, r)),
  }),
  urls: (name: string, description: string, o: Opts & { listen?: boolean } = {}): EnvVar<string[]> => ({
    name,
    description,
    ...o,
    parse: (r) => {
      const urls = parseList(r).map((u) => (o.listen ? checkListenDir(name, checkUrl(name, u)) : checkUrl(name, u)));
      if (urls.length === 0) throw new Error('at least one URL is required');
      return urls;
    },
  }),
  logLevel: (name = 'NSM_LOG_LEVEL', o: Opts = { default: 'INFO' }): EnvVar<LogLevel> => ({
    name,
    description: 'log level: TRACE, DEBUG, INFO, WARN, ERROR, FATAL (SIGUSR1 switches to TRACE, SIGUSR2 back)',
    ...o,
    parse: (r) => {
      const l = parseLogLevel(r);
      if (!l) throw new Error('unknown log level; use TRACE, DEBUG, INFO, WARN, ERROR');
      return l;
    },
  }),
  oneOf: <T extends string>(name: string, description: string, values: readonly T[], o: Opts = {}): EnvVar<T> => ({
    name,
    description,
    ...o,
    parse: (r) => {
      const v = r.trim().toLowerCase();
      if (!(values as readonly string[]).includes(v)) throw new Error(`must be one of ${values.join(', ')}`);
      return v as T;
    },
  }),
};

function checkUrl(name: string, raw: string): string {
  try {
    return parseUrl(raw, name).url;
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw new ConfigError(name, raw, err.reason);
    throw err;
  }
}

/**
 * Measured on the 2-core dev machine (200 first Requests at once, test/scale-overload.test.ts with no
 * stall, machine shared, load average ~30): limit 2 → 60 s, 8 → 24 s, 32 → 26 s. Past a handful the
 * cores are busy and more at once only adds event-loop lag (what broke keepalive and dials before).
 */
export const DEFAULT_MAX_CONCURRENT_REQUESTS = 8;
/** A waiting call costs a few KiB; 4096 of them stay far below the memory target. */
export const DEFAULT_MAX_QUEUED_REQUESTS = 4096;

/** NSM_MAX_CONCURRENT_REQUESTS and NSM_MAX_QUEUED_REQUESTS of a server with an admission (nsmgr, forwarder); `what` says what is admitted. */
export function admissionVars(what: string) {
  return {
    maxConcurrentRequests: env.int(
      'NSM_MAX_CONCURRENT_REQUESTS',
      `${what}; the rest wait in arrival order until their turn or until their caller gives up. Closes have a separate bound of the same size`,
      { default: String(DEFAULT_MAX_CONCURRENT_REQUESTS), min: 1, max: MAX_CONCURRENCY },
    ),
    maxQueuedRequests: env.int('NSM_MAX_QUEUED_REQUESTS', 'nsm-ts: Requests (and, separately, Closes) that may wait for their turn; one more is refused with RESOURCE_EXHAUSTED', {
      default: String(DEFAULT_MAX_QUEUED_REQUESTS),
      min: 0,
      max: MAX_QUEUE,
    }),
  };
}

// ---- Identity ----------------------------------------------------------------------------------------

/**
 * Where the mesh's SPIFFE Workload API serves on a node (`nsm up`'s embedded issuer, in the run dir next
 * to nsmgr's socket): a component started by hand on a node whose mesh is up (`ip netns exec POD nsm nsc`)
 * finds it there without SPIFFE_ENDPOINT_SOCKET.
 */
export const DEFAULT_WORKLOAD_API_SOCKET = 'unix:///var/lib/networkservicemesh/agent.sock';

/** True when `url` (unix://) names an existing unix socket. */
export function unixSocketExists(url: string): boolean {
  try {
    return statSync(url.replace(/^unix:(\/\/)?/, '')).isSocket();
  } catch {
    return false;
  }
}

/** What `identityVars` parse into: the Workload API endpoint (undefined: none) and whether plaintext was chosen. */
export interface IdentityConfig {
  readonly spiffeEndpointSocket: string | undefined;
  readonly insecure: boolean;
}

/**
 * SPIFFE_ENDPOINT_SOCKET and NSM_INSECURE, the same on every component. Rules: NSM_INSECURE=true → plaintext
 * gRPC and HS256 tokens, the socket is not used. Otherwise SPIFFE_ENDPOINT_SOCKET (`unix:///abs/path`; a
 * malformed value is a ConfigError naming it); unset → `defaultSocket` when that socket exists (a mesh is
 * up), else a ConfigError naming SPIFFE_ENDPOINT_SOCKET. `defaultSocket` is there for tests.
 */
export function identityVars(opts: { defaultSocket?: string } = {}) {
  const fallback = opts.defaultSocket ?? DEFAULT_WORKLOAD_API_SOCKET;
  const socket: EnvVar<string | undefined> = {
    name: ENDPOINT_ENV,
    description: `SPIFFE Workload API socket (unix:///absolute/path) this component takes its X.509-SVID from, as upstream; unset: ${fallback} if that socket exists (a mesh is up), else the component exits 2 — unless NSM_INSECURE=true`,
    parse: (raw) => (raw.trim() === '' ? (unixSocketExists(fallback) ? fallback : undefined) : parseWorkloadEndpoint(raw.trim(), ENDPOINT_ENV)),
    check(parsed) {
      if (parsed.insecure === true || parsed.spiffeEndpointSocket !== undefined) return;
      throw new ConfigError(ENDPOINT_ENV, '', `not set, and no SPIFFE Workload API socket at the mesh default ${fallback}; set it (e.g. unix:///run/spire/sockets/agent.sock), or NSM_INSECURE=true for plaintext`);
    },
  };
  return {
    spiffeEndpointSocket: socket,
    insecure: env.bool('NSM_INSECURE', 'nsm-ts: true = plaintext gRPC and unverified HS256 path tokens, no SVID (a warning at start; nsm status shows it). Never chosen silently', {
      default: 'false',
    }),
  };
}
