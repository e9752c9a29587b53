/** Help text listing a component's environment variables, generated from its config schema. */
import type { ConfigSchema, EnvVar } from '../components/config.js';

export function envHelp(schema: ConfigSchema<Record<string, EnvVar<unknown>>>): string {
  const vars = Object.values(schema.vars);
  const width = Math.max(...vars.map((v) => v.name.length));
  const lines = vars.map((v) => `  ${v.name.padEnd(width)}  ${v.description}${v.required ? ' (required)' : v.default ? ` (default ${v.default})` : ''}`);
  return `\nConfigured by environment variables (upstream NSM names):\n${lines.join('\n')}\n`;
}
