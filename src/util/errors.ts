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
