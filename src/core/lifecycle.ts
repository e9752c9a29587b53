/** Lifecycle of a long-running part (a component, a mesh, a background loop). */

/** How long the process edge waits for `stop()` of a part that does not say (`Running.stopBudgetMs`). */
export const DEFAULT_STOP_BUDGET_MS = 10_000;

export interface Running {
  stop(): Promise<void>;
  /** Resolves if the part ends by itself (e.g. an NSC whose work is done). */
  readonly done?: Promise<void>;
  /**
   * The longest `stop()` may take, asked when the stop begins (it may depend on what the part holds then,
   * e.g. an NSC's number of connections); the process exits hard after it. Default DEFAULT_STOP_BUDGET_MS.
   */
  stopBudgetMs?(): number;
}
