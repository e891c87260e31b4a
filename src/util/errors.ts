/** Base class of every error a user can cause (bad file, bad option, bad data). The message says what to do. */
export class LynxError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A file or folder given by the user is missing, malformed or truncated. */
export class InvalidInputError extends LynxError {}

/** Something the user asked for is not supported (an architecture, a tensor type, an option value). */
export class UnsupportedError extends LynxError {}

/**
 * The command line itself is wrong: an unknown or out-of-range option value, options that do not go together. The
 * `lynx` command exits with 2 for these (1 for every other LynxError: bad files, bad data, conflicting folders).
 */
export class UsageError extends InvalidInputError {}

/** Run `f`, turning the InvalidInputError or UnsupportedError it throws into a UsageError (for code that checks command-line values). */
export function asUsage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if ((e instanceof InvalidInputError || e instanceof UnsupportedError) && !(e instanceof UsageError)) throw new UsageError(e.message, { cause: e });
    throw e;
  }
}
