/**
 * The example's closing summary: when the interruption happened, when the pinger saw it, when the NSC
 * detected and healed it (from its status file), how many pings the independent ping lost, and a short
 * timeline of its replies around the interruption. Pure: lines in, no I/O.
 */
import { fmtMs, type StepResult } from './example-steps.js';
import type { PingCounts, Reply } from './example-traffic.js';

/** The NSC status file's record of its last heal (wall-clock ms). */
export interface LastHeal {
  readonly at: number;
  readonly detectedAt: number;
  readonly ms: number;
  readonly action: string;
  readonly cause: string;
}

export interface ExampleOutcome {
  /** When `nsm-1` was set down (ms since the epoch). */
  readonly cutAt: number;
  /** Ms after `cutAt` at which the seed pinger stopped; negative when it did not. */
  readonly pingerStopped: number;
  readonly heal: LastHeal | undefined;
  readonly counts: PingCounts;
  /** The independent ping's replies, in arrival order. */
  readonly replies: readonly Reply[];
}

/** Replies shown on each side of the interruption. */
const TIMELINE_SPAN = 3;

export const fmtRel = (ms: number): string => `${ms >= 0 ? '+' : '-'}${(Math.abs(ms) / 1000).toFixed(2)} s`.padStart(8);

export function summaryLines(o: ExampleOutcome): string[] {
  const { cutAt, heal } = o;
  const lines = [
    '',
    'Summary',
    `  interruption   ip link set nsm-1 down at ${new Date(cutAt).toISOString()}`,
    `  pinger         stopped ${fmtMs(o.pingerStopped)} after it (it saw the loss)`,
  ];
  if (heal) {
    lines.push(`  detected       +${fmtMs(heal.detectedAt - cutAt)} (fault confirmed by ${heal.cause === 'data-plane' ? 'kernel-state checks' : 'the control plane'})`);
    lines.push(`  healed         +${fmtMs(heal.at - cutAt)} by ${heal.action === 'repair' ? 'repair in place (same interface, MAC and ifindex)' : 'reselect'}`);
  } else {
    lines.push('  healed         (no heal event in the NSC status file)');
  }
  lines.push(`  pings lost     ${o.counts.sent - o.counts.received} of ${o.counts.sent} at a 0.2 s interval (independent ping)`);
  lines.push('  timeline       (replies of the independent ping, relative to the interruption)');
  return [...lines, ...timelineLines(o)];
}

function timelineLines({ cutAt, heal, replies }: ExampleOutcome): string[] {
  const before = replies.filter((r) => r.t < cutAt).slice(-TIMELINE_SPAN);
  const after = replies.filter((r) => r.t >= cutAt).slice(0, TIMELINE_SPAN);
  const lines = before.map((r) => `      ${fmtRel(r.t - cutAt)}  reply seq=${r.seq}`);
  lines.push(`      ${fmtRel(0)}  ── nsm-1 set down ──`);
  if (heal) lines.push(`      ${fmtRel(heal.at - cutAt)}  ── healed ──`);
  let prev = before.at(-1)?.seq;
  for (const r of after) {
    lines.push(`      ${fmtRel(r.t - cutAt)}  reply seq=${r.seq}${lostRange(prev, r.seq)}`);
    prev = r.seq;
  }
  return lines;
}

/** "   (seq a–b lost)" when replies between `prev` and `seq` are missing. */
function lostRange(prev: number | undefined, seq: number): string {
  if (prev === undefined || seq <= prev + 1) return '';
  return `   (seq ${prev + 1}${seq - 1 > prev + 1 ? `–${seq - 1}` : ''} lost)`;
}

/** The last line: every step passed, or how many failed. */
export function verdictLine(results: readonly StepResult[]): string {
  const failed = results.filter((r) => !r.ok).length;
  return `\n${failed === 0 ? '✔ every step passed' : `✖ ${failed} step(s) failed`} (${results.length} steps)`;
}
