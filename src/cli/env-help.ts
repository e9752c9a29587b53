/** Help text listing a component's environment variables, generated from its config schema. */
import type { ConfigSchema, EnvVar } from '../components/config.js';

/** `extra`: variables read outside the schema (name → meaning), listed after it. */
export function envHelp(schema: ConfigSchema<Record<string, EnvVar<unknown>>>, extra: Record<string, string> = {}): string {
  const rows = [
    ...Object.values(schema.vars).map((v) => [v.name, `${v.description}${v.required ? ' (required)' : v.default ? ` (default ${v.default})` : ''}`] as const),
    ...Object.entries(extra),
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  return `\nConfigured by environment variables (upstream NSM names):\n${rows.map(([name, text]) => `  ${name.padEnd(width)}  ${text}`).join('\n')}\n`;
}
