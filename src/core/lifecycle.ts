/** Lifecycle of a long-running part (a component, a mesh, a background loop). */
export interface Running {
  stop(): Promise<void>;
  /** Resolves if the part ends by itself (e.g. an NSC whose work is done). */
  readonly done?: Promise<void>;
}
