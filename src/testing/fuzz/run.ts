/**
 * Seeded, time-bounded property runs for the fuzz suite (fast-check). Every property of the suite runs
 * with one seed: `NSM_FUZZ_SEED` when set, else {@link DEFAULT_FUZZ_SEED}, printed when the property
 * starts, so CI is deterministic and a failure can be replayed. A property stops after its number of runs
 * or its time budget, whichever comes first; a failure then gets a bounded time to shrink.
 *
 * On failure the error carries the seed, the counterexample path and the shrunk counterexample, and the
 * command that replays exactly that run:
 *
 *   NSM_FUZZ_SEED=<seed> NSM_FUZZ_PATH=<property>@<path> node scripts/run-tests.mjs fuzz
 *
 * `NSM_FUZZ_PATH` names the property it is for; other properties run as usual. For a deeper local hunt,
 * `NSM_FUZZ_SCALE` (1–100) multiplies every property's runs and time budget. Properties that hit a defect
 * known to be open are skipped with the defect as reason; `NSM_FUZZ_KNOWN_DEFECTS=1` runs them too.
 */
import fc from 'fast-check';
import { InvalidArgumentError } from '../../core/errors.js';

/** The seed when `NSM_FUZZ_SEED` is not set: fixed, so CI replays the same inputs on every run. */
export const DEFAULT_FUZZ_SEED = 20261202;
export const MAX_FUZZ_SCALE = 100;

export interface FuzzBudget {
  /** Most runs of the property. */
  readonly runs: number;
  /** Time budget of the whole property (runs and shrinking), ms. */
  readonly timeMs: number;
  /** Extra time (ms) to shrink a failure found within `timeMs`. Default DEFAULT_SHRINK_MS. */
  readonly shrinkMs?: number;
  /** A run that takes longer fails (a hung server is a finding, not a hung suite). Default DEFAULT_RUN_TIMEOUT_MS. */
  readonly runTimeoutMs?: number;
}

export const DEFAULT_RUN_TIMEOUT_MS = 60_000;

export interface FuzzSettings {
  readonly seed: number;
  /** `property@path` to replay one run, when set. */
  readonly replay?: { property: string; path: string };
  readonly scale: number;
}

/** Reads NSM_FUZZ_SEED, NSM_FUZZ_PATH and NSM_FUZZ_SCALE (test support; components never read these). */
export function fuzzSettings(env: Readonly<Record<string, string | undefined>> = process.env): FuzzSettings {
  const rawSeed = env.NSM_FUZZ_SEED;
  let seed = DEFAULT_FUZZ_SEED;
  if (rawSeed !== undefined && rawSeed !== '') {
    if (!/^-?\d{1,10}$/.test(rawSeed) || Number(rawSeed) < -(2 ** 31) || Number(rawSeed) >= 2 ** 31) {
      throw new InvalidArgumentError('NSM_FUZZ_SEED', rawSeed, 'must be a 32-bit integer');
    }
    seed = Number(rawSeed);
  }
  let replay: FuzzSettings['replay'];
  const rawPath = env.NSM_FUZZ_PATH;
  if (rawPath !== undefined && rawPath !== '') {
    const m = /^([\w-]{1,80})@(\d{1,6}(?::\d{1,6}){0,500})$/.exec(rawPath);
    if (!m) throw new InvalidArgumentError('NSM_FUZZ_PATH', rawPath, 'must be <property>@<path> as printed by a failed fuzz run');
    replay = { property: m[1]!, path: m[2]! };
  }
  let scale = 1;
  const rawScale = env.NSM_FUZZ_SCALE;
  if (rawScale !== undefined && rawScale !== '') {
    scale = Number(rawScale);
    if (!Number.isInteger(scale) || scale < 1 || scale > MAX_FUZZ_SCALE) {
      throw new InvalidArgumentError('NSM_FUZZ_SCALE', rawScale, `must be an integer from 1 to ${MAX_FUZZ_SCALE}`);
    }
  }
  return Object.freeze({ seed, replay, scale });
}

/** The skip reason of a property that fails on a known open defect, or undefined when NSM_FUZZ_KNOWN_DEFECTS=1. */
export function knownDefect(reason: string, env: Readonly<Record<string, string | undefined>> = process.env): string | undefined {
  return env.NSM_FUZZ_KNOWN_DEFECTS === '1' ? undefined : reason;
}

export interface FuzzResult {
  readonly runs: number;
  readonly ms: number;
  readonly interrupted: boolean;
}

/** Time (ms) a failure gets for shrinking on top of the search budget. */
export const DEFAULT_SHRINK_MS = 15_000;

/**
 * Checks `predicate` on values of `arb` with the suite's seed within `budget`; prints the seed and bound at
 * the start and the runs done at the end. New runs stop at the time budget; a failure found by then gets
 * `shrinkMs` more to shrink. Throws on a failure with the seed, path, counterexample and replay command.
 */
export async function checkFuzz<T>(
  name: string,
  arb: fc.Arbitrary<T>,
  predicate: (v: T) => Promise<void>,
  budget: FuzzBudget,
  settings: FuzzSettings = fuzzSettings(),
  log: (line: string) => void = (l) => console.log(l),
): Promise<FuzzResult> {
  const runs = budget.runs * settings.scale;
  const timeMs = budget.timeMs * settings.scale;
  const shrinkMs = budget.shrinkMs ?? DEFAULT_SHRINK_MS;
  const path = settings.replay?.property === name ? settings.replay.path : undefined;
  log(`# fuzz ${name}: seed ${settings.seed}, up to ${runs} runs or ${(timeMs / 1000).toFixed(0)} s${path ? `, replaying path ${path}` : ''}`);
  const t0 = performance.now();
  let failed = false;
  let done = 0;
  const property = fc.asyncProperty(arb, async (v) => {
    // Past the budget, runs pass without touching the mesh; a failure found before keeps shrinking.
    if (!failed && performance.now() - t0 > timeMs) return;
    done++;
    try {
      await predicate(v);
    } catch (err) {
      failed = true;
      throw err;
    }
  });
  const details = await fc.check(property, {
    seed: settings.seed,
    numRuns: runs,
    interruptAfterTimeLimit: timeMs + shrinkMs,
    markInterruptAsFailure: false,
    timeout: budget.runTimeoutMs ?? DEFAULT_RUN_TIMEOUT_MS,
    ...(path ? { path } : {}),
  });
  const ms = Math.round(performance.now() - t0);
  const stopped = done < runs && !details.failed ? ' (time budget reached)' : '';
  log(`# fuzz ${name}: ${done} runs in ${ms} ms${stopped}${details.failed ? ', FAILED' : ''}`);
  if (details.failed) throw new Error(failureReport(name, details));
  return { runs: done, ms, interrupted: stopped !== '' };
}

function failureReport<Ts>(name: string, d: fc.RunDetails<Ts>): string {
  const cause = d.errorInstance instanceof Error ? d.errorInstance.message : String(d.errorInstance);
  return [
    `fuzz property ${name} failed after ${d.numRuns} runs (shrunk ${d.numShrinks} times)`,
    `  seed ${d.seed}, path ${d.counterexamplePath ?? '?'}`,
    `  replay: NSM_FUZZ_SEED=${d.seed} NSM_FUZZ_PATH=${name}@${d.counterexamplePath ?? ''} node scripts/run-tests.mjs fuzz`,
    `  counterexample: ${d.counterexample ? fc.stringify(d.counterexample) : '?'}`,
    `  error: ${cause}`,
  ].join('\n');
}

/** `kind status×count` over outcome counts, sorted by kind. */
export function summarize(outcomes: ReadonlyMap<string, number>): string {
  return [...outcomes].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}×${v}`).join(', ');
}
