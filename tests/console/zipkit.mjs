// The JavaScript verifier loaded in Node, and what the tests need to build mutated bundles:
// a bundle's members, and a zip of stored members around them (as a forger's tool writes).
import { createRequire } from "node:module";
import { join } from "node:path";
import { ROOT } from "./harness.mjs";

const require = createRequire(import.meta.url);
require(join(ROOT, "server/src/console/assets/verify.js"));
require(join(ROOT, "server/src/console/assets/verify-bundle.js"));
require(join(ROOT, "server/src/console/assets/verify-record.js"));
export const V = globalThis.OnsiteVerify;

/** Every member's name and bytes, in archive order. */
export async function members(bytes) {
  const z = V.internals.openZip(bytes);
  const out = [];
  for (const n of z.names) out.push([n, await z.read(n, 1 << 30)]);
  return out;
}

/** A zip of stored members (what a forger's tool would write). */
export function zip(entries) {
  const te = new TextEncoder();
  const parts = [], central = [];
  let offset = 0;
  for (const [name, data] of entries) {
    const n = te.encode(name), crc = V.internals.crc32(data);
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0); h.writeUInt16LE(20, 4); h.writeUInt32LE(crc, 14); h.writeUInt32LE(data.length, 18); h.writeUInt32LE(data.length, 22); h.writeUInt16LE(n.length, 26);
    parts.push(h, n, data);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0); c.writeUInt16LE(20, 4); c.writeUInt16LE(20, 6); c.writeUInt32LE(crc, 16); c.writeUInt32LE(data.length, 20); c.writeUInt32LE(data.length, 24);
    c.writeUInt16LE(n.length, 28); c.writeUInt32LE(offset, 42);
    central.push(c, n);
    offset += 30 + n.length + data.length;
  }
  const cd = Buffer.concat(central);
  const e = Buffer.alloc(22);
  e.writeUInt32LE(0x06054b50, 0); e.writeUInt16LE(entries.length, 8); e.writeUInt16LE(entries.length, 10); e.writeUInt32LE(cd.length, 12); e.writeUInt32LE(offset, 16);
  return new Uint8Array(Buffer.concat([...parts, cd, e]));
}

