import type { DescMethod } from "@bufbuild/protobuf";

/**
 * methodName returns a method's full name on the wire:
 * "/" + the fully qualified service name + "/" + the method name.
 */
export function methodName(method: Pick<DescMethod, "name" | "parent">): string {
  return `/${method.parent.typeName}/${method.name}`;
}

const encoder = new TextEncoder();

/** methodId returns the 32-bit FNV-1a hash of a full method name in UTF-8. */
export function methodId(fullName: string): number {
  let h = 0x811c9dc5;
  for (const b of encoder.encode(fullName)) {
    h = Math.imul(h ^ b, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
