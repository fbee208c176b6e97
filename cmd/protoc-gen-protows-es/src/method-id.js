// @ts-check

/**
 * The wire id of a method: the 32-bit FNV-1a hash of its full name
 * ("/package.Service/Method") as UTF-8. It must equal protows.MethodID in
 * Go and methodId in @protows/client; the Go golden tests check that a pair
 * of names that collide in Go collide here too.
 *
 * @param {string} fullName
 * @returns {number}
 */
export function methodId(fullName) {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(fullName)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * The full name of a method on the wire.
 *
 * @param {import("@bufbuild/protobuf").DescMethod} method
 * @returns {string}
 */
export function methodName(method) {
  return `/${method.parent.typeName}/${method.name}`;
}
