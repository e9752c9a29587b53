/**
 * Logging: pino JSON lines. Components create one root logger. Chain elements log through `ctx.log`, which
 * the chain has already bound to `{ element }` (see `elementLog` in chain.ts); work that outlives a call
 * (timers, watches, keep-alive loops) logs through a child made once in the element's factory.
 */
import { pino, type Logger, type Level } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Maps upstream logrus names (TRACE, INFO, …) to pino levels. */
export function parseLogLevel(value: string): LogLevel | undefined {
  const v = value.trim().toLowerCase();
  if (v === 'warning') return 'warn';
  if (v === 'panic') return 'fatal';
  return (LOG_LEVELS as readonly string[]).includes(v) ? (v as LogLevel) : undefined;
}

export function createLogger(name: string, level: LogLevel = 'info', destination: NodeJS.WritableStream = process.stderr): Logger {
  return pino({ name, level: level as Level | 'silent', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination as pino.DestinationStream);
}

/** A logger that drops everything (tests, library defaults). */
export const silentLogger: Logger = pino({ level: 'silent' });
