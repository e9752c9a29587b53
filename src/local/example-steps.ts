/**
 * The example's step runner: each step prints its number and title, the command it stands for, a
 * progress indicator while it runs (a spinner with the elapsed time on a terminal, nothing otherwise),
 * then its result or error and its duration. A failing step throws {@link StepFailed} naming it; every
 * step's outcome is kept in `results` for the final count.
 */
import { errorMessage } from '../core/errors.js';

export class StepFailed extends Error {
  override name = 'StepFailed';
}

export interface StepResult {
  readonly title: string;
  readonly ok: boolean;
  readonly ms: number;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export const fmtMs = (ms: number): string => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`);

export class StepRunner {
  #n = 0;
  readonly results: StepResult[] = [];
  constructor(private readonly out: NodeJS.WriteStream) {}

  line(s = ''): void {
    this.out.write(`${s}\n`);
  }

  /** Runs one step; `fn` resolves with the result line or throws the reason it failed. */
  async run(title: string, cmd: string | undefined, fn: () => Promise<string>): Promise<void> {
    const n = ++this.#n;
    this.line(`[${String(n).padStart(2)}] ${title}`);
    if (cmd) this.line(`     $ ${cmd}`);
    const t0 = performance.now();
    const stopProgress = this.#progress(t0);
    try {
      const result = await fn();
      stopProgress();
      this.#done(title, true, `✔ ${result}`, performance.now() - t0);
    } catch (err) {
      stopProgress();
      this.#done(title, false, `✖ ${errorMessage(err)}`, performance.now() - t0);
      throw new StepFailed(`step ${n} failed: ${title}`);
    }
  }

  /** Starts the spinner on a terminal; returns what stops it and clears its line. */
  #progress(t0: number): () => void {
    if (this.out.isTTY !== true) return () => undefined;
    let f = 0;
    const spin = setInterval(() => this.out.write(`\r     ${FRAMES[f++ % FRAMES.length]} ${((performance.now() - t0) / 1000).toFixed(1)} s`), 100);
    return () => {
      clearInterval(spin);
      this.out.write('\r\x1b[2K');
    };
  }

  #done(title: string, ok: boolean, text: string, ms: number): void {
    this.results.push({ title, ok, ms });
    this.line(`     ${text} (${fmtMs(ms)})`);
  }
}
