/**
 * A flag that llama.cpp's compute threads can read, for `llama_context_params.abort_callback`
 * (`bool (*)(void * data)`, asked between graph nodes on the thread that called llama_decode).
 *
 * A JavaScript callback would do, but during a decode on a worker thread koffi relays each of its calls (one per graph
 * node) to the main thread and waits for it there. So the callback is native code that already exists: libc's
 * `strlen` over a two-byte buffer { flag, 0 } returns 0 or 1, which the caller reads as false or true. Without libc
 * (not glibc Linux), there is no flag and decodes run to their end.
 */
import koffi from 'koffi';
import type { Pointer } from './pointer.js';

export interface NativeAbortFlag {
  /** For abort_callback. */
  callback: Pointer;
  /** For abort_callback_data. */
  data: Pointer;
  set(aborted: boolean): void;
  free(): void;
}

let reader: Pointer | null | undefined;

function flagReader(): Pointer | null {
  if (reader !== undefined) return reader;
  try {
    const libc = koffi.load('libc.so.6');
    const dlsym = libc.func('void *dlsym(void *handle, const char *symbol)');
    reader = (dlsym(null, 'strlen') as Pointer | null) ?? null; // RTLD_DEFAULT
  } catch {
    reader = null;
  }
  return reader;
}

/** A new flag, initially clear; undefined where no native reader is available (decodes then run to their end). */
export function createAbortFlag(): NativeAbortFlag | undefined {
  const callback = flagReader();
  if (!callback) return undefined;
  const data = koffi.alloc('uint8_t', 2);
  const bytes = new Uint8Array(koffi.view(data, 2));
  bytes[0] = 0;
  bytes[1] = 0;
  return {
    callback,
    data,
    set: (aborted) => void (bytes[0] = aborted ? 1 : 0),
    free: () => koffi.free(data),
  };
}
