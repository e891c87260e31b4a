/** What can go wrong talking to a remote server, as errors that say what to do. */
import { LynxError } from '../../util/errors.js';

/**
 * The server refused a request (a status that retrying does not change: 400, 401, 404, ...), could not be reached, or
 * kept failing after every retry. `status` is the last HTTP status, if there was one.
 */
export class RemoteServerError extends LynxError {
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The server's model tokenizes differently from the local model: its token ids would mean other text here. */
export class VocabularyMismatchError extends LynxError {}
