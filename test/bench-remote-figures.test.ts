/**
 * The pure parts of the remote benchmark (bench/remote-figures.ts): iperf3's JSON report read into figures
 * (its error and a report without the receiver's sum are clear errors), the median, the summary line
 * read back from a benchmark's output, and the targets judged from a summary (met, MISSED, reported, not
 * run). No network: the reports are iperf3 3.x's shape, written by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EMPTY_SUMMARY, median, parseIperf, parseSummary, remoteTargets, SUMMARY_PREFIX, type RemoteSummary } from '../bench/remote-figures.js';
import { stats } from '../bench/lib.js';

const report = (end: unknown, extra: Record<string, unknown> = {}) => JSON.stringify({ start: {}, intervals: [], end, ...extra });

test('parseIperf reads the receiver sum, retransmits and CPU; names what is wrong otherwise', () => {
  const ok = report({ sum_sent: { bits_per_second: 2.1e9, retransmits: 7 }, sum_received: { bits_per_second: 2.0e9 }, cpu_utilization_percent: { host_total: 31.5, remote_total: 40.25 } });
  assert.deepEqual(parseIperf(ok), { bps: 2.0e9, retransmits: 7, cpuClient: 31.5, cpuServer: 40.25 });
  const noCpu = parseIperf(report({ sum_sent: {}, sum_received: { bits_per_second: 1e6 } }));
  assert.equal(noCpu.bps, 1e6);
  assert.ok(Number.isNaN(noCpu.retransmits) && Number.isNaN(noCpu.cpuClient));
  const cases: Array<[string, RegExp]> = [
    [JSON.stringify({ start: {}, intervals: [], end: {}, error: 'unable to connect to server: Connection refused' }), /Error: iperf3: unable to connect to server: Connection refused$/],
    [report({ sum_sent: { bits_per_second: 1 } }), /no end\.sum_received\.bits_per_second/],
    [report({ sum_received: { bits_per_second: 'fast' } }), /no end\.sum_received\.bits_per_second/],
    ['', /not JSON: \(empty\)/],
    ['iperf3: error - the server is busy', /not JSON: iperf3: error - the server is busy/],
  ];
  for (const [text, why] of cases) assert.throws(() => parseIperf(text), why, text);
});

test('median: odd, even, empty, non-finite values ignored', () => {
  const cases: Array<[number[], number]> = [
    [[3, 1, 2], 2],
    [[4, 1, 3, 2], 2.5],
    [[5], 5],
    [[NaN, 7, Infinity, 1], 4],
  ];
  for (const [xs, want] of cases) assert.equal(median(xs), want, JSON.stringify(xs));
  assert.ok(Number.isNaN(median([])));
});

function summary(p: { local?: number[]; remote?: number[]; raw?: number[]; vxlan?: number[]; wg?: number[]; remoteError?: string; vxlanError?: string }): RemoteSummary {
  const heal = stats([500, 520, 540]);
  return {
    latency: { local: p.local && stats(p.local), remote: p.remote && stats(p.remote), rawVeth: stats([20]), rawVxlan: stats([90]), remoteError: p.remoteError },
    heal: { local: { n: 3, toReply: heal, healed: heal, both: heal, never: 0 } },
    throughput: { raw: { bps: p.raw ?? [], retransmits: [] }, local: { bps: [10e9], retransmits: [] }, vxlan: { bps: p.vxlan ?? [], retransmits: [] }, wireguard: { bps: p.wg ?? [], retransmits: [] } },
    clientErrors: { ...(p.wg ? {} : { wireguard: 'not connected in 30 s' }), ...(p.vxlanError ? { vxlan: p.vxlanError } : {}) },
  };
}

test('remoteTargets judges the latency ratio and the VXLAN share, reports WireGuard and heal', () => {
  const verdicts = (s: RemoteSummary) => remoteTargets(s).map((t) => t.met);
  const cases: Array<[string, RemoteSummary, Array<boolean | undefined>]> = [
    ['both met (2× exactly, 80 % exactly)', summary({ local: [50, 50, 50], remote: [100, 100, 100], raw: [2e9], vxlan: [1.6e9], wg: [0.5e9] }), [true, true, undefined, undefined]],
    ['both missed', summary({ local: [50], remote: [101], raw: [2e9], vxlan: [1.5e9], wg: [0.5e9] }), [false, false, undefined, undefined]],
    ['remote Requests failed: missed', summary({ local: [50], remote: [], raw: [2e9], remoteError: 'not connected in 15000 ms', vxlanError: 'not connected in 30 s' }), [false, false, undefined, undefined]],
    ['raw underlay not measured', summary({ local: [50], remote: [60], vxlan: [1e9], wg: [1e9] }), [true, undefined, undefined, undefined]],
    ['nothing run', EMPTY_SUMMARY, [undefined, undefined, undefined, undefined]],
  ];
  for (const [name, s, want] of cases) assert.deepEqual(verdicts(s), want, name);

  const [lat, vx, wg, heal] = remoteTargets(summary({ local: [50], remote: [75], raw: [2e9, 4e9, 3e9], vxlan: [2.7e9], wg: [0.6e9] }));
  assert.match(lat!.measured, /^75\.0 ms vs 50\.0 ms \(1\.50×; p95 75\.0 vs 50\.0 ms; raw VXLAN pair 90\.0 ms, raw veth 20\.0 ms\)$/);
  assert.match(vx!.measured, /^2\.70 Gbit\/s = 90 % of the raw underlay's 3\.00 Gbit\/s/, 'the median of the raw runs');
  assert.match(wg!.measured, /^0\.60 Gbit\/s = 20 %/);
  assert.match(heal!.measured, /^local 520\.0 ms \(to reply 520\.0 ms, n=3\)$/);

  const missing = remoteTargets(summary({ local: [50], remote: [], raw: [2e9], remoteError: 'not connected in 15000 ms' }));
  assert.equal(missing[0]!.measured, 'remote Requests failed: not connected in 15000 ms');
  assert.equal(missing[1]!.measured, 'not run', 'no VXLAN client started, no error: not run');
  assert.equal(missing[2]!.measured, 'the connection failed: not connected in 30 s', 'the client error of the kind');
  assert.equal(remoteTargets(summary({ local: [50], remote: [60], vxlan: [1e9], wg: [1e9] }))[1]!.measured, 'not run', 'no raw figure, no error');
  assert.equal(remoteTargets({ ...EMPTY_SUMMARY, throughput: { raw: { bps: [], retransmits: [], error: 'iperf3: boom' }, vxlan: { bps: [1], retransmits: [] } } })[1]!.measured, 'raw underlay not measured: iperf3: boom');
  assert.deepEqual(remoteTargets(EMPTY_SUMMARY).map((t) => t.measured), ['not run', 'not run', 'not run', 'not run']);
});

test('parseSummary finds the summary line among the output, and survives NaN written as null', () => {
  const s = summary({ local: [50], remote: [], raw: [2e9] });
  const text = ['### 1. Request → usable', '| a | b |', `${SUMMARY_PREFIX}${JSON.stringify(s)}`, ''].join('\n');
  const back = parseSummary(text)!;
  assert.equal(back.latency.remote!.p50, null, 'NaN became null');
  assert.deepEqual(remoteTargets(back).map((t) => t.met), [undefined, undefined, undefined, undefined]);
  assert.equal(parseSummary('bench failed: boom\n'), undefined);
});
