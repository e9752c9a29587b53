/**
 * Process edge shared by every long-running component (`nsm registry`, `nsm nsmgr`, …): parse and
 * validate the env once (exit 2 with a message naming the variable and the value), print the
 * effective config, start, stop cleanly on SIGTERM/SIGINT (exiting hard only when stop overruns the
 * budget the component gives, `Running.stopBudgetMs`, default 10 s), switch the log level on SIGUSR1 (trace) /
 * SIGUSR2 (configured level). A signal during start aborts the `signal` given to `start` (a component that
 * waits there, e.g. for its first SVID, gives up with a CancelledError and the process exits 0); otherwise
 * the stop runs once start ends.
 */
import type { ConfigSchema, EnvVar } from '../components/config.js';
import { CancelledError, ConfigError, InvalidArgumentError, errorMessage } from '../core/errors.js';
import { DEFAULT_STOP_BUDGET_MS, type Running } from '../core/lifecycle.js';
import { createLogger, parseLogLevel, type Logger } from '../core/log.js';

export type { Running };

export const EXIT_CONFIG = 2;

export async function runComponent<S extends Record<string, EnvVar<unknown>>>(opts: {
  schema: ConfigSchema<S>;
  env?: NodeJS.ProcessEnv;
  /** `signal` aborts when a stop signal arrives during start. */
  start(config: ReturnType<ConfigSchema<S>['parse']>, log: Logger, signal: AbortSignal): Promise<Running>;
}): Promise<void> {
  const env = opts.env ?? process.env;
  let config: ReturnType<ConfigSchema<S>['parse']>;
  try {
    config = opts.schema.parse(env);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof InvalidArgumentError) {
      process.stderr.write(`nsm ${opts.schema.component}: invalid configuration: ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
  const level = parseLogLevel(env.NSM_LOG_LEVEL ?? 'info') ?? 'info';
  const log = createLogger(opts.schema.component, level);
  log.info({ config: opts.schema.describe(env) }, `nsm ${opts.schema.component} starting; effective configuration`);
  process.on('SIGUSR1', () => void (log.level = 'trace'));
  process.on('SIGUSR2', () => void (log.level = level));

  // Signal handlers go in before start: a SIGTERM during start-up must not hit Node's default handler
  // (that would end the process before it removes what start created); it is honoured once start ends.
  let running: Running | undefined;
  let requested: string | undefined;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping || !running) return;
    stopping = true;
    const budgetMs = running.stopBudgetMs?.() ?? DEFAULT_STOP_BUDGET_MS;
    log.info({ signal, budgetMs }, 'stopping');
    const hard = setTimeout(() => {
      log.error({ budgetMs }, `stop took longer than its budget (${budgetMs} ms); exiting`);
      log.flush?.();
      process.exit(1);
    }, budgetMs);
    try {
      await running.stop();
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'stop failed');
    }
    clearTimeout(hard);
    log.info('stopped');
    log.flush?.();
    process.exit(0);
  };
  const starting = new AbortController();
  const onSignal = (signal: string) => {
    if (running) return void stop(signal);
    requested ??= signal;
    starting.abort(new CancelledError(`${signal} during start`));
  };
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => onSignal(sig));

  try {
    running = await opts.start(config, log, starting.signal);
  } catch (err) {
    if (requested && err instanceof CancelledError) {
      log.info({ signal: requested }, 'stopped during start');
      log.flush?.();
      process.exit(0);
    }
    log.error({ err: errorMessage(err) }, 'start failed');
    process.stderr.write(`nsm ${opts.schema.component}: start failed: ${errorMessage(err)}\n`);
    if (err instanceof ConfigError || err instanceof InvalidArgumentError) process.exit(EXIT_CONFIG);
    process.exit(1);
  }
  if (requested) {
    log.info({ signal: requested }, 'stop was requested during start');
    await stop(requested);
    return;
  }
  log.info('ready');
  if (running.done) {
    await running.done;
    await stop('done');
  }
}
