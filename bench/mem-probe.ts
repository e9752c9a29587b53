/**
 * Memory probe, preloaded into a component by the bench (`NODE_OPTIONS=--import=…/mem-probe.js`,
 * `NSMB_MEM_DIR=<dir>`; see `memProbeEnv` in lib.ts). It does nothing until the process gets SIGWINCH
 * (a signal no component uses: SIGUSR1/SIGUSR2 set the log level); then it takes the bench's request
 * `<dir>/req-<pid>.json` (`{ seq, snapshot }`; none: nothing to do) and writes `<dir>/mem-<pid>-<seq>.json`
 * with `process.memoryUsage()` and the V8 heap spaces (MiB used), and — when asked — after those figures
 * a heap snapshot `<dir>/heap-<pid>-<seq>.heapsnapshot` (V8 blocks the process while it writes one:
 * seconds for a large heap).
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import v8 from 'node:v8';

const dir = process.env.NSMB_MEM_DIR;
if (dir) {
  process.on('SIGWINCH', () => {
    const req = join(dir, `req-${process.pid}.json`);
    if (!existsSync(req)) return;
    const { seq, snapshot: wanted } = JSON.parse(readFileSync(req, 'utf8')) as { seq: number; snapshot: boolean };
    rmSync(req, { force: true });
    const at = Date.now();
    const usage = process.memoryUsage();
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.space_used_size / 2 ** 20]));
    const snapshot = wanted ? v8.writeHeapSnapshot(join(dir, `heap-${process.pid}-${seq}.heapsnapshot`)) : undefined;
    const file = join(dir, `mem-${process.pid}-${seq}.json`);
    writeFileSync(`${file}.tmp`, JSON.stringify({ at, usage, spaces, snapshot }));
    renameSync(`${file}.tmp`, file);
  });
}
