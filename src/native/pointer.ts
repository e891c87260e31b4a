import koffi from 'koffi';

/** An opaque native pointer as koffi hands it out. */
export type Pointer = unknown;

/** The address a pointer holds, to compare two pointers or to write one into native memory. */
export function pointerAddress(ptr: Pointer): bigint {
  return BigInt(koffi.address(ptr as never) as bigint | number);
}
