/** Helpers shared by the local-mesh commands: the `--run-dir` option, the context, and the error edge. */
import { realpathSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { parseDuration } from '../components/config.js';
import { errorMessage, InvalidArgumentError } from '../core/errors.js';
import type { MeshContext } from './mesh.js';
import { DEFAULT_RUN_DIR, RUN_DIR_ENV, resolveRunDir, runPaths } from './paths.js';

export function addRunDirOption(cmd: Command): Command {
  return cmd.option('--run-dir <dir>', `run directory (sockets, state, logs); env ${RUN_DIR_ENV}; default ${DEFAULT_RUN_DIR}`);
}

/** The script of the running `nsm` program; components and the supervisor are started from it. */
export function entryScript(): string {
  const script = process.argv[1];
  try {
    return realpathSync(script);
  } catch {
    return script;
  }
}

export function meshContext(runDir: string | undefined): MeshContext {
  return {
    paths: runPaths(resolveRunDir(runDir)),
    hostname: hostname(),
    entry: entryScript(),
    say: (line) => process.stdout.write(`${line}\n`),
  };
}

/** Runs a command body; an error becomes one `nsm <cmd>: message` line on stderr and exit code 1. */
export function action<A extends unknown[]>(name: string, fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      process.stderr.write(`nsm ${name}: ${errorMessage(err)}\n`);
      process.exitCode = 1;
    }
  };
}

/** A positive duration given on the command line (`--timeout 30s`); a bad one names the flag and the value. */
export function durationOption(flag: string, raw: string): number {
  try {
    const ms = parseDuration(raw);
    if (ms <= 0) throw new Error('must be positive');
    return ms;
  } catch (err) {
    throw new InvalidArgumentError(flag, raw, errorMessage(err));
  }
}
