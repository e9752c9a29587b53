/**
 * The fixture of the end-to-end tests of the local mesh (`nsm up|status|run|down`; test/local-mesh.test.ts,
 * test/embedded-identity.test.ts): one run dir and its pods' netns names per test; every process the mesh
 * records is remembered, so cleanup (`nsm down`, then SIGKILL by recorded pid and start time, netns and
 * temp dirs removed) leaves nothing even when an assertion failed mid-test. A mesh of nodes (`nsm up --nodes`):
 * the node and underlay netns its state names are remembered too, and cleanup stops whatever still runs in
 * them (by pid, found by netns) and deletes them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { processesInNetns, topologyNetns } from '../src/local/nodes.js';
import { isRunning, type ProcRecord } from '../src/local/proc.js';
import type { MeshState } from '../src/local/state.js';
import type { MeshStatus } from '../src/local/status.js';

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export class LocalMeshFixture {
  readonly dir: string;
  readonly netns: string[] = [];
  readonly seen = new Map<string, ProcRecord>();
  /** Node and underlay netns of the mesh (from its state). */
  readonly infra: string[] = [];
  /** `--run-dir <dir>`, for the commands under test. */
  readonly d: string[];

  /** `prefix` names the run dir (`/tmp/nsmt-<prefix>-…`) and the pods; `nsm` runs the CLI under test. */
  constructor(
    readonly prefix: string,
    readonly nsm: (args: string[]) => Result,
  ) {
    this.dir = mkdtempSync(`/tmp/nsmt-${prefix}-`);
    this.d = ['--run-dir', this.dir];
  }

  pod(suffix: string): string {
    const n = `nsmt-${this.prefix}${process.pid}-${suffix}`;
    this.netns.push(n);
    return n;
  }

  state(): MeshState | undefined {
    try {
      const s = JSON.parse(readFileSync(join(this.dir, 'mesh.json'), 'utf8')) as MeshState;
      const remember = (r: ProcRecord | undefined) => r && r.pid > 0 && this.seen.set(`${r.pid}/${r.startTime}`, r);
      remember(s.supervisor);
      for (const c of Object.values(s.components)) remember(c);
      for (const p of Object.values(s.pods)) for (const x of p.processes) remember(x);
      for (const n of s.topology ? topologyNetns(s.topology) : []) if (!this.infra.includes(n)) this.infra.push(n);
      return s;
    } catch {
      return undefined;
    }
  }

  status(): MeshStatus {
    const args = ['status', '-o', 'json', ...this.d];
    const r = this.nsm(args);
    assert.equal(r.code, 0, `nsm ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    this.state();
    return JSON.parse(r.stdout) as MeshStatus;
  }

  running(): ProcRecord[] {
    this.state();
    return [...this.seen.values()].filter((r) => isRunning(r));
  }

  cleanup(): void {
    this.state();
    if (existsSync(join(this.dir, 'mesh.json'))) this.nsm(['down', ...this.d]);
    for (const r of this.running()) {
      try {
        process.kill(r.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const n of this.netns) if (existsSync(`/run/netns/${n}`)) spawnSync('ip', ['netns', 'delete', n]);
    for (const { pid } of processesInNetns(this.infra)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const n of this.infra) if (existsSync(`/run/netns/${n}`)) spawnSync('ip', ['netns', 'delete', n]);
    for (const d of tmpLeftovers(this.netns)) rmSync(join('/tmp', d), { recursive: true, force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Temp dirs an NSE of these pods made (`/tmp/<NSM_NAME>-XXXXXX` for its listen socket) and left behind. */
export function tmpLeftovers(pods: readonly string[]): string[] {
  return readdirSync('/tmp').filter((d) => pods.some((p) => d.startsWith(`${p}-`)));
}

/** Polls `fn` every 200 ms until it returns something truthy (errors count as not yet) or `timeoutMs` passed. */
export async function eventually<T>(what: string, fn: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
