/** Command-line program: one subcommand per component plus the local-mesh commands. */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export async function run(argv: string[]): Promise<void> {
  const program = new Command('nsm').description('nsm-ts: a Network Service Mesh in TypeScript').version(VERSION);
  await program.parseAsync(argv);
}
