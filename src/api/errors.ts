/**
 * The base error of nsm-ts and the one error the API helpers (NSURLs, CIDRs) raise. They live here, at
 * the bottom of the layers, so `src/api` needs nothing from `src/core`; `src/core/errors.ts` re-exports
 * them beside the other classes.
 */
export class NsmError extends Error {
  override name = 'NsmError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A value that a caller supplied is wrong. Names the field and the value. */
export class InvalidArgumentError extends NsmError {
  override name = 'InvalidArgumentError';
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${field}: ${reason} (got ${excerpt(value)})`, options);
  }
}

/** Longest excerpt of a value an error message shows. */
export const MAX_EXCERPT = 120;

/** A value as JSON, cut to MAX_EXCERPT characters with its full length named (a bad value may be huge). */
export function excerpt(value: unknown): string {
  const json = JSON.stringify(value) ?? String(value);
  return json.length <= MAX_EXCERPT ? json : `${json.slice(0, MAX_EXCERPT)}… (${json.length} characters)`;
}
