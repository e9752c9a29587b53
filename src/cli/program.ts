/** Command-line program: one subcommand per component plus the local-mesh commands. */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import * as apply from './commands/apply.js';
import * as down from './commands/down.js';
import * as example from './commands/example.js';
import * as forwarder from './commands/forwarder.js';
import * as health from './commands/health.js';
import * as nsc from './commands/nsc.js';
import * as nse from './commands/nse.js';
import * as nsmgr from './commands/nsmgr.js';
import * as registry from './commands/registry.js';
import * as registryK8s from './commands/registry-k8s.js';
import * as runPod from './commands/run.js';
import * as status from './commands/status.js';
import * as stopPod from './commands/stop-pod.js';
import * as supervise from './commands/supervise.js';
import * as up from './commands/up.js';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const COMMANDS: ReadonlyArray<{ register(program: Command): void }> = [
  // components
  registry,
  registryK8s,
  nsmgr,
  forwarder,
  nse,
  nsc,
  // the local mesh
  example,
  apply,
  up,
  down,
  status,
  runPod,
  stopPod,
  supervise,
  // tools
  health,
];

export function buildProgram(): Command {
  const program = new Command('nsm')
    .description('nsm-ts: a Network Service Mesh in TypeScript — registry, nsmgr, forwarder, NSC and NSE, wire- and config-compatible with upstream NSM')
    .version(VERSION);
  for (const c of COMMANDS) c.register(program);
  return program;
}

export async function run(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
