/**
 * The pure parts of the remote benchmark (bench/remote.ts): reading iperf3's JSON report, the summary the
 * benchmark prints as its last line (`remote summary: {…}`, read back by bench/run.ts), and the targets
 * judged from it. Pure and table-tested (test/bench-remote-figures.test.ts), so run.ts and remote.ts judge
 * the same way and a change of iperf3's report shows as a clear error instead of a wrong figure.
 */
import { ms, type Stats } from './lib.js';

/** The paths whose throughput is measured: the raw underlay between the node netns, and the three connection kinds. */
export const THROUGHPUT_PATHS = ['raw', 'local', 'vxlan', 'wireguard'] as const;
export type ThroughputPath = (typeof THROUGHPUT_PATHS)[number];
/** The connection kinds: NSC and NSE on node-1 (veth), and across the nodes by VXLAN (payload ETHERNET) and WireGuard (payload IP). */
export const CONNECTION_KINDS = ['local', 'vxlan', 'wireguard'] as const;
export type ConnectionKind = (typeof CONNECTION_KINDS)[number];

/** Remote Request → usable p50 at most this many times the local one. */
export const LATENCY_RATIO_TARGET = 2;
/** VXLAN throughput at least this share of the raw underlay's. */
export const VXLAN_SHARE_TARGET = 0.8;

export interface IperfFigures {
  /** Bits per second the receiver got (end.sum_received). */
  readonly bps: number;
  /** TCP retransmits on the sender (end.sum_sent.retransmits). */
  readonly retransmits: number;
  /** CPU % (host_total) of the client and the server process. */
  readonly cpuClient: number;
  readonly cpuServer: number;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : NaN);

/** The figures of an `iperf3 -c … -J` report; throws with iperf3's own error, or naming what is missing. */
export function parseIperf(text: string): IperfFigures {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`iperf3 report is not JSON: ${text.slice(0, 200) || '(empty)'}`);
  }
  if (typeof j.error === 'string') throw new Error(`iperf3: ${j.error}`);
  const end = j.end as Record<string, Record<string, unknown> | undefined> | undefined;
  const bps = num(end?.sum_received?.bits_per_second);
  if (!Number.isFinite(bps)) throw new Error('iperf3 report has no end.sum_received.bits_per_second');
  const cpu = end?.cpu_utilization_percent;
  return { bps, retransmits: num(end?.sum_sent?.retransmits), cpuClient: num(cpu?.host_total), cpuServer: num(cpu?.remote_total) };
}

/** The median of `xs` (NaN when empty). */
export function median(xs: readonly number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface HealFigures {
  readonly n: number;
  /** Link down → first prober reply after the command (heal-time.ts's figure). */
  readonly toReply: Stats;
  /** Link down → the NSC's status file counts one more `healed` (the event's own time). */
  readonly healed: Stats;
  /** Link down → both: status healed and a reply (the later of the two). */
  readonly both: Stats;
  /** Interruptions that did not heal within the timeout. */
  readonly never: number;
}

/** What remote.ts measured; JSON (NaN is written as null), read back by run.ts. */
export interface RemoteSummary {
  readonly latency: {
    readonly local?: Stats;
    readonly remote?: Stats;
    readonly rawVeth?: Stats;
    readonly rawVxlan?: Stats;
    /** Why the remote samples stopped (the first failure), if they did. */
    readonly remoteError?: string;
  };
  readonly heal: Partial<Record<ConnectionKind, HealFigures>>;
  /** Bits per second of each run, and why a path was not measured. */
  readonly throughput: Partial<Record<ThroughputPath, { readonly bps: number[]; readonly retransmits: number[]; readonly wireguardGoCpu?: number[]; readonly error?: string }>>;
  /** Connection kinds whose client could not connect, with the reason. */
  readonly clientErrors: Partial<Record<ConnectionKind, string>>;
}

/** The summary of a run that did not measure anything (run.ts, when the stage did not run or failed before its summary). */
export const EMPTY_SUMMARY: RemoteSummary = { latency: {}, heal: {}, throughput: {}, clientErrors: {} };

export interface Target {
  readonly target: string;
  /** Undefined: not run, or reported only. */
  readonly met?: boolean;
  readonly measured: string;
}

/** JSON turns NaN into null: a figure that is not a finite number was not measured. */
const fin = (v: number | null | undefined): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const gbit = (bps: number) => `${ms(bps / 1e9, 2)} Gbit/s`;

function latencyTarget(s: RemoteSummary): Target {
  const target = `remote Request → usable p50 ≤ ${LATENCY_RATIO_TARGET}× local (VXLAN, NSE on node-2 vs NSE on node-1)`;
  const r = fin(s.latency.remote?.p50);
  const l = fin(s.latency.local?.p50);
  if (r === undefined || l === undefined) {
    // A remote Request that fails is the target missed, not a figure missing.
    return s.latency.remoteError ? { target, met: false, measured: `remote Requests failed: ${s.latency.remoteError}` } : { target, measured: 'not run' };
  }
  const p95 = `p95 ${ms(s.latency.remote!.p95)} vs ${ms(s.latency.local!.p95)} ms`;
  return { target, met: r <= LATENCY_RATIO_TARGET * l, measured: `${ms(r)} ms vs ${ms(l)} ms (${ms(r / l, 2)}×; ${p95}; raw VXLAN pair ${ms(s.latency.rawVxlan?.p50 ?? NaN)} ms, raw veth ${ms(s.latency.rawVeth?.p50 ?? NaN)} ms)` };
}

function throughputShare(s: RemoteSummary, path: 'vxlan' | 'wireguard'): { share?: number; failed?: boolean; measured: string } {
  const t = s.throughput[path];
  const raw = median(s.throughput.raw?.bps ?? []);
  const v = median(t?.bps ?? []);
  if (!Number.isFinite(v) || !Number.isFinite(raw)) {
    const failed = t?.error ?? s.clientErrors[path];
    if (failed) return { failed: true, measured: `the connection failed: ${failed}` };
    const raw = s.throughput.raw?.error;
    return { measured: raw ? `raw underlay not measured: ${raw}` : 'not run' };
  }
  return { share: v / raw, measured: `${gbit(v)} = ${ms((100 * v) / raw, 0)} % of the raw underlay's ${gbit(raw)} (local veth connection ${gbit(median(s.throughput.local?.bps ?? []))})` };
}

function healTarget(s: RemoteSummary): Target {
  const target = 'remote link-down heal p50 (reported, against the local link-down of the same run)';
  const fig = (k: ConnectionKind) => {
    const h = s.heal[k];
    return h && fin(h.both.p50) !== undefined ? `${k} ${ms(h.both.p50)} ms (to reply ${ms(h.toReply.p50)} ms, n=${h.n}${h.never ? `, ${h.never} never` : ''})` : undefined;
  };
  const parts = CONNECTION_KINDS.map(fig).filter((x): x is string => x !== undefined);
  return { target, measured: parts.length ? parts.join('; ') : 'not run' };
}

/** The targets of the remote stage: latency ratio and VXLAN share judged; WireGuard and heal reported. */
export function remoteTargets(s: RemoteSummary): Target[] {
  const vx = throughputShare(s, 'vxlan');
  const wg = throughputShare(s, 'wireguard');
  return [
    latencyTarget(s),
    { target: `VXLAN throughput ≥ ${Math.round(VXLAN_SHARE_TARGET * 100)} % of the raw underlay (iperf3, TCP)`, met: vx.failed ? false : vx.share === undefined ? undefined : vx.share >= VXLAN_SHARE_TARGET, measured: vx.measured },
    { target: 'WireGuard throughput (reported; userspace wireguard-go)', measured: wg.measured },
    healTarget(s),
  ];
}

/** The prefix of the summary line remote.ts prints last. */
export const SUMMARY_PREFIX = 'remote summary: ';

/** The summary of a remote.ts output, or undefined when it has none (the run failed before the end). */
export function parseSummary(text: string): RemoteSummary | undefined {
  const line = text.split('\n').find((l) => l.startsWith(SUMMARY_PREFIX));
  return line ? (JSON.parse(line.slice(SUMMARY_PREFIX.length)) as RemoteSummary) : undefined;
}
