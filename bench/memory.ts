/**
 * Memory: Node's own floor on this machine and where the memory of idle components goes, measured.
 * - Floors (each an idle `node` process, RSS read from /proc after 1.5 s): an empty `node`; node with
 *   `@grpc/grpc-js`, `nice-grpc` and `pino` imported; node with every component module of nsm-ts
 *   imported but nothing started.
 * - Components, idle: registry, nsmgr, forwarder (no connection), the seed NSE, and one `nsm nsc` with one
 *   connection (default liveness settings), 5 s after it connected. For each: RSS (anonymous / file-backed,
 *   from /proc/<pid>/status), `process.memoryUsage()` and the V8 heap spaces (bench/mem-probe.ts, asked by
 *   SIGWINCH), and for nsmgr, forwarder and the NSC a heap snapshot summarized by kind (bench/heap.ts). A
 *   snapshot runs a full GC first, so the figures taken after it show the heap that is really live.
 *
 *   node dist/bench/memory.js [--json FILE]
 */
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { heapLine, summarizeHeap, type HeapSummary } from './heap.js';
import {
  addNs, argValue, benchDir, machineInfo, memFigures, memProbeEnv, ms, progress, ROOT, rssMiB, rssParts, runBench, sleep, startMesh, startNse,
  startSeedClient, table, type Proc,
} from './lib.js';

export interface MemRow {
  name: string;
  rssMiB: number;
  anonMiB: number;
  fileMiB: number;
  usage?: NodeJS.MemoryUsage;
  /** After the full GC of a heap snapshot. */
  heapUsedAfterGcMiB?: number;
  spaces?: Record<string, number>;
  heap?: HeapSummary;
}

export interface MemoryResult {
  floors: MemRow[];
  components: MemRow[];
}

const MiB = 2 ** 20;

/** An idle node process that first imports `modules`; its RSS and memoryUsage after 1.5 s. */
async function floor(name: string, modules: string[]): Promise<MemRow> {
  const script = `for (const m of ${JSON.stringify(modules)}) await import(m);
setTimeout(() => process.stdout.write(JSON.stringify(process.memoryUsage()) + '\\n'), 1500);
setInterval(() => {}, 1e6);`;
  const c = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await new Promise<string>((res, rej) => {
      let buf = '';
      c.stdout!.on('data', (b: Buffer) => {
        buf += b.toString();
        if (buf.includes('\n')) res(buf.split('\n')[0]!);
      });
      c.once('exit', (code) => rej(new Error(`floor ${name}: exited with ${code}`)));
    });
    const parts = rssParts(c.pid!);
    return { name, rssMiB: rssMiB(c.pid!), anonMiB: parts.anon, fileMiB: parts.file, usage: JSON.parse(line) as NodeJS.MemoryUsage };
  } finally {
    c.kill('SIGKILL');
  }
}

export async function nodeFloors(): Promise<MemRow[]> {
  const comp = (c: string) => pathToFileURL(join(ROOT, `dist/src/components/${c}/index.js`)).href;
  return [
    await floor('node, nothing loaded', []),
    await floor('node + @grpc/grpc-js, nice-grpc, pino', ['@grpc/grpc-js', 'nice-grpc', 'pino']),
    await floor('node + all nsm-ts component modules (not started)', ['registry', 'nsmgr', 'forwarder', 'nse', 'nsc'].map(comp)),
  ];
}

/** Memory figures of a running component (started with memProbeEnv(dir)); with a heap snapshot when `snapshot`. */
export async function componentRow(name: string, p: Proc, dir: string, snapshot: boolean): Promise<MemRow> {
  const parts = rssParts(p.pid);
  const row: MemRow = { name, rssMiB: rssMiB(p.pid), anonMiB: parts.anon, fileMiB: parts.file };
  const f = await memFigures(p.pid, dir);
  row.usage = f?.usage;
  row.spaces = f?.spaces;
  if (snapshot) {
    const s = await memFigures(p.pid, dir, true, 120_000);
    if (s?.snapshot) {
      try {
        row.heap = summarizeHeap(s.snapshot);
      } catch (err) {
        progress(`  heap snapshot of ${name}: ${(err as Error).message}`);
      }
      rmSync(s.snapshot, { force: true });
      row.heapUsedAfterGcMiB = ((await memFigures(p.pid, dir))?.usage.heapUsed ?? NaN) / MiB;
    }
  }
  return row;
}

/** Registry, nsmgr, forwarder, NSE and an NSC with one connection, idle; everything is stopped again. */
export async function idleComponents(): Promise<MemRow[]> {
  const dir = benchDir('mem');
  const probe = memProbeEnv(dir);
  const mesh = await startMesh(dir, {}, probe);
  const nseNs = await addNs('nse');
  const nscNs = await addNs('nsc');
  const nse = await startNse(mesh, nseNs, { ...probe, NSM_CIDR_PREFIX: '172.16.1.100/31' });
  const { proc: nsc } = await startSeedClient(mesh, nscNs, probe);
  await sleep(5000);
  const rows = [
    await componentRow('registry', mesh.procs.registry, dir, false),
    await componentRow('nsmgr', mesh.procs.nsmgr, dir, true),
    await componentRow('forwarder', mesh.procs.forwarder, dir, true),
    await componentRow('nse (1 connection)', nse, dir, false),
    await componentRow('nsc (1 connection)', nsc, dir, true),
  ];
  await nsc.kill();
  await nse.kill();
  for (const c of ['forwarder', 'nsmgr', 'registry'] as const) await mesh.procs[c].kill();
  return rows;
}

export async function runMemory(): Promise<MemoryResult> {
  progress('memory: Node floors');
  const floors = await nodeFloors();
  progress(`  node ${ms(floors[0]!.rssMiB, 0)} MiB, + grpc/nice-grpc/pino ${ms(floors[1]!.rssMiB, 0)} MiB, + nsm-ts modules ${ms(floors[2]!.rssMiB, 0)} MiB`);
  progress('memory: idle components (heap snapshots of nsmgr, forwarder, NSC)');
  const components = await idleComponents();
  progress(`  ${components.map((c) => `${c.name} ${ms(c.rssMiB, 0)}`).join(', ')} MiB`);
  return { floors, components };
}

const mib = (b: number | undefined) => ms((b ?? NaN) / MiB, 1);

export function memoryTable(rows: MemRow[]): string {
  return table(
    ['process', 'RSS MiB', 'anon / file-backed', 'V8 heap total / used (after GC)', 'external (arrayBuffers)', 'RSS − heap total − external'],
    rows.map((r) => [
      r.name, ms(r.rssMiB), `${ms(r.anonMiB)} / ${ms(r.fileMiB)}`,
      r.usage ? `${mib(r.usage.heapTotal)} / ${mib(r.usage.heapUsed)}${r.heapUsedAfterGcMiB !== undefined ? ` (${ms(r.heapUsedAfterGcMiB)})` : ''}` : '-',
      r.usage ? `${mib(r.usage.external)} (${mib(r.usage.arrayBuffers)})` : '-',
      r.usage ? ms(r.rssMiB - (r.usage.heapTotal + r.usage.external) / MiB) : '-',
    ]),
  );
}

export function heapLines(rows: MemRow[]): string[] {
  return rows.filter((r) => r.heap).map((r) => `- ${r.name}: ${heapLine(r.heap!)}`);
}

if (process.argv[1]?.endsWith('/memory.js')) {
  runBench(async () => {
    console.log(machineInfo());
    const r = await runMemory();
    console.log(memoryTable([...r.floors, ...r.components]));
    console.log(heapLines(r.components).join('\n'));
    const json = argValue('json', '');
    if (json) writeFileSync(json, JSON.stringify({ machine: machineInfo(), ...r }, null, 2));
  });
}
