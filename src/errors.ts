/**
 * The one error type of diffeval. `code` is stable and machine-readable (tests and scripts
 * match on it); `message` names the file or value at fault and says what to do about it.
 * The CLI prints `error[CODE]: message` and exits 2 (usage or input error).
 */
export class DiffevalError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DiffevalError";
    this.code = code;
  }
}

export function isDiffevalError(e: unknown, code?: string): e is DiffevalError {
  return e instanceof DiffevalError && (code === undefined || e.code === code);
}
