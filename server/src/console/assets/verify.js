// Onsite bundle verifier in JavaScript: an implementation independent of the Rust one,
// written from docs/bundle-format.md, using only what a browser has (WebCrypto for SHA-256
// and ECDSA P-256, DecompressionStream for deflate). Nothing is uploaded. The same file runs
// in Node (>= 20) for the agreement tests: it only assigns globalThis.OnsiteVerify.
//
// verifyBundle(bytes, {deviceKey, logKey}) -> {ok, bundle_version, summary, checks, files}
// Each check is {check, subject, passed, detail}; names and subjects are the Rust verifier's.
"use strict";
(function () {
  const te = new TextEncoder();
  const td = new TextDecoder("utf-8", { fatal: true });
  const subtle = globalThis.crypto.subtle;
  const MAX_MEMBERS = 4096, MAX_MEMBER_BYTES = 64 << 20, MAX_NAME = 200, SMALL_CAP = 16 << 20;
  const ZERO = "0".repeat(64);

  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  function unhex(s) {
    // Lowercase only, as the device writes it: another spelling of the same bytes is not
    // the signed text (docs/bundle-format.md).
    if (typeof s !== "string" || s.length % 2 || !/^[0-9a-f]*$/.test(s)) return null;
    const out = new Uint8Array(s.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
    return out;
  }
  const sha256 = async (b) => new Uint8Array(await subtle.digest("SHA-256", b));
  const sha256hex = async (b) => hex(await sha256(b));
  const isSha = (s) => typeof s === "string" && /^[0-9a-f]{64}$/.test(s);
  const cat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  };
  const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  async function es256(publicKey, message, signature) {
    if (!publicKey || publicKey.length !== 65 || publicKey[0] !== 4 || !signature || signature.length !== 64) return false;
    try {
      const key = await subtle.importKey("raw", publicKey, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
      return await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, signature, message);
    } catch (_) {
      return false;
    }
  }
  async function validKey(k) {
    if (!k || k.length !== 65 || k[0] !== 4) return false;
    try { await subtle.importKey("raw", k, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]); return true; } catch (_) { return false; }
  }

  // ---- zip (stored and deflated members; CRC-32 checked) ----
  const CRC = new Uint32Array(256).map((_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
  function crc32(b) { let c = 0xffffffff; for (const x of b) c = CRC[(c ^ x) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; }
  async function inflate(data) {
    const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
  function checkName(name) {
    if (!name.length || name.length > MAX_NAME) return `a name has 1 to ${MAX_NAME} characters`;
    const bad = [...name].find((c) => !/[A-Za-z0-9._\-/]/.test(c));
    if (bad) return `character ${JSON.stringify(bad)} is not allowed in a member name`;
    if (name.startsWith("/")) return "absolute paths are not allowed";
    if (name.split("/").some((s) => !s || s === "." || s === "..")) return "empty, `.` or `..` path segments are not allowed";
    return null;
  }
  function openZip(bytes) {
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let eocd = -1;
    for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) if (v.getUint32(i, true) === 0x06054b50) { eocd = i; break; }
    if (eocd < 0) throw new Error("not a zip archive (no end of central directory)");
    const count = v.getUint16(eocd + 10, true), cdSize = v.getUint32(eocd + 12, true), cdOff = v.getUint32(eocd + 16, true);
    if (eocd + 22 + v.getUint16(eocd + 20, true) > bytes.length) throw new Error("the archive comment exceeds the file");
    if (v.getUint16(eocd + 4, true) !== 0 || v.getUint16(eocd + 6, true) !== 0 || v.getUint16(eocd + 8, true) !== count) throw new Error("multi-disk archives are not supported");
    if (count > MAX_MEMBERS) throw new Error(`${count} members, more than ${MAX_MEMBERS}`);
    if (cdOff + cdSize > eocd) throw new Error("the central directory lies outside the archive");
    const members = new Map(), folded = new Set();
    let p = cdOff, total = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > bytes.length || v.getUint32(p, true) !== 0x02014b50) throw new Error("a central directory entry is malformed");
      const method = v.getUint16(p + 10, true), crc = v.getUint32(p + 16, true);
      let csize = v.getUint32(p + 20, true), size = v.getUint32(p + 24, true);
      const nlen = v.getUint16(p + 28, true), xlen = v.getUint16(p + 30, true), clen = v.getUint16(p + 32, true);
      let local = v.getUint32(p + 42, true);
      // Zip64: a field of all ones is in the 0x0001 extra field instead (size, compressed, offset).
      for (let x = p + 46 + nlen; x + 4 <= p + 46 + nlen + xlen;) {
        const id = v.getUint16(x, true), len = v.getUint16(x + 2, true);
        if (id === 1) {
          let f = x + 4;
          const next = () => { const n = Number(v.getBigUint64(f, true)); f += 8; return n; };
          if (size === 0xffffffff) size = next();
          if (csize === 0xffffffff) csize = next();
          if (local === 0xffffffff) local = next();
        }
        x += 4 + len;
      }
      let name;
      try { name = td.decode(bytes.subarray(p + 46, p + 46 + nlen)); } catch (_) { throw new Error("a member name is not UTF-8"); }
      const bad = checkName(name);
      if (bad) throw new Error(`member ${JSON.stringify(name)}: ${bad}`);
      if (members.has(name)) throw new Error("two members have the same name");
      if (folded.has(name.toLowerCase())) throw new Error(`member ${name}: another member has the same name (ignoring case)`);
      folded.add(name.toLowerCase());
      if (size > MAX_MEMBER_BYTES) throw new Error(`member ${name} is larger than ${MAX_MEMBER_BYTES} bytes`);
      if (size > 1 << 20 && size / Math.max(csize, 1) > 100) throw new Error(`member ${name} expands ${Math.floor(size / Math.max(csize, 1))}x (a zip bomb?)`);
      total += size;
      if (total > 2 ** 31) throw new Error("members add up to more than 2 GiB");
      if (local + 30 > bytes.length || v.getUint32(local, true) !== 0x04034b50) throw new Error(`member ${i}: invalid local file header`);
      const dataStart = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
      if (dataStart + csize > bytes.length) throw new Error(`member ${i}: its data lies outside the archive`);
      if (method !== 0 && method !== 8) throw new Error(`member ${name} uses compression method ${method}`);
      members.set(name, { method, crc, csize, size, local });
      p += 46 + nlen + xlen + clen;
    }
    return {
      names: [...members.keys()],
      has: (n) => members.has(n),
      async read(name, cap) {
        const m = members.get(name);
        if (!m) throw new Error("missing");
        if (m.size > cap) throw new Error(`larger than ${cap} bytes`);
        if (m.local + 30 > bytes.length || v.getUint32(m.local, true) !== 0x04034b50) throw new Error("its local header is malformed");
        const start = m.local + 30 + v.getUint16(m.local + 26, true) + v.getUint16(m.local + 28, true);
        const raw = bytes.subarray(start, start + m.csize);
        if (raw.length !== m.csize) throw new Error("truncated");
        let data;
        try { data = m.method === 0 ? raw : await inflate(raw); } catch (e) { throw new Error("its deflate stream is corrupt"); }
        if (data.length !== m.size) throw new Error(`holds ${data.length} bytes, the directory says ${m.size}`);
        if (crc32(data) !== m.crc) throw new Error("CRC-32 mismatch");
        return data;
      },
    };
  }

  // ---- RFC 8785 canonical JSON: what JavaScript's own serialization is, keys sorted ----
  function canonical(v) {
    if (v === null || typeof v !== "object") {
      if (typeof v === "number" && !Number.isFinite(v)) throw new Error("non-finite number");
      return JSON.stringify(v);
    }
    if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
    return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canonical(v[k])).join(",") + "}";
  }
  function parseCanonical(bytes) {
    let text;
    try { text = td.decode(bytes); } catch (_) { throw new Error("not UTF-8"); }
    let v;
    try { v = JSON.parse(text); } catch (e) { throw new Error("not JSON: " + e.message); }
    if (canonical(v) !== text) throw new Error("not in canonical form (RFC 8785)");
    return v;
  }

  // The raw text of a top-level member's value in a JSON object (the journal binds the
  // payload's exact bytes by hash, so the verifier hashes them as they stand).
  function rawMember(text, key) {
    let i = 0;
    const ws = () => { while (/\s/.test(text[i])) i++; };
    const str = () => { const s = i; i++; while (text[i] !== '"') { if (text[i] === "\\") i++; i++; if (i > text.length) throw new Error("unterminated string"); } i++; return text.slice(s, i); };
    const value = () => {
      ws();
      const s = i;
      if (text[i] === '"') { str(); return [s, i]; }
      if (text[i] === "{" || text[i] === "[") {
        let depth = 0;
        do {
          if (text[i] === '"') { str(); continue; }
          if (text[i] === "{" || text[i] === "[") depth++;
          if (text[i] === "}" || text[i] === "]") depth--;
          i++;
        } while (depth > 0 && i < text.length);
        return [s, i];
      }
      while (i < text.length && !/[,}\]\s]/.test(text[i])) i++;
      return [s, i];
    };
    ws();
    if (text[i] !== "{") return null;
    i++;
    for (;;) {
      ws();
      if (text[i] === "}") return null;
      const k = JSON.parse(str());
      ws(); i++; // ':'
      const [s, e] = value();
      if (k === key) return text.slice(s, e);
      ws();
      if (text[i] === ",") i++;
      else return null;
    }
  }

  // ---- journal (per-order chain, seals, sessions, countersignatures) ----
  async function checkStructure(e, device, linked) {
    const bytes = unhex(e.body);
    if (!bytes || (await sha256hex(bytes)) !== e.hash) return { problem: `HashMismatch { seq: ${e.seq} }` };
    let text, body;
    try { text = td.decode(bytes); body = JSON.parse(text); } catch (err) { return { problem: `Malformed { seq: ${e.seq} }` }; }
    if (body.seq !== e.seq) return { problem: `Malformed { seq: ${e.seq}, reason: "body says seq ${body.seq}" }` };
    if (body.device !== device) return { problem: `WrongDevice { seq: ${e.seq} }` };
    if (!linked(body)) return { problem: `BrokenLink { seq: ${e.seq} }` };
    if (body.payload !== null && body.payload !== undefined) {
      const raw = rawMember(text, "payload");
      if (raw === null || (await sha256hex(te.encode(raw))) !== body.payload_sha256) return { problem: `Malformed { seq: ${e.seq}, reason: "payload does not match its hash" }` };
    }
    return { body, bytes };
  }

  /** Walks entries; mode "slice" (per-order chain) or "standalone". Returns {problem, countersigned, bodies}. */
  async function walkJournal(entries, keys, device, mode, order) {
    let prev = ZERO, lastSeq = 0, lastSigned = -1, walked = 0;
    const hashes = new Map(), countersigned = [], bodies = new Map();
    const fail = (problem) => ({ problem, countersigned, bodies });
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (mode === "slice" && !(e.seq > lastSeq)) return fail(`Gap { expected: ${lastSeq + 1}, found: ${e.seq} }`);
      const linked = mode === "slice" ? (b) => b.order_prev === prev : () => true;
      const s = await checkStructure(e, device, linked);
      if (s.problem) return fail(s.problem);
      const b = s.body;
      if (mode === "slice" && b.order !== order) return fail(`Malformed { seq: ${e.seq}, reason: "the entry is about another order" }`);
      hashes.set(e.seq, e.hash);
      const sig = unhex(e.signature || "");
      if (sig && sig.length) {
        let key;
        if (b.key === undefined || b.key === null) key = keys.device;
        else if (b.v < 2 || b.kind === "session_open") return fail(`Malformed { seq: ${e.seq}, reason: "this entry must be signed by the device key" }`);
        else {
          const session = b.key < e.seq ? keys.sessions.get(b.key) : undefined;
          if (!session) return fail(`UnknownSession { seq: ${e.seq} }`);
          if (b.at_ms > session.expires_at_ms) return fail(`SessionExpired { seq: ${e.seq} }`);
          key = session.key;
        }
        if (!(await es256(key, s.bytes, sig))) return fail(`BadSignature { seq: ${e.seq} }`);
        lastSigned = i;
        if (b.kind === "session_open" && (b.key === undefined || b.key === null)) {
          const k = unhex(b.payload && b.payload.session_key);
          if (!(await validKey(k))) return fail(`Malformed { seq: ${e.seq}, reason: "bad session key" }`);
          keys.sessions.set(b.seq, { key: k, expires_at_ms: b.payload.expires_at_ms });
        }
      } else if (b.v < 2 || mode === "standalone") {
        return fail(`BadSignature { seq: ${e.seq} }`);
      }
      if (b.kind === "countersign") {
        const c = b.payload || {};
        const csig = unhex(c.signature);
        const bad = `BadCountersign { seq: ${e.seq} }`;
        if (!csig || typeof c.seq !== "number" || c.seq >= e.seq || (hashes.has(c.seq) && hashes.get(c.seq) !== c.hash)) return fail(bad);
        const msg = te.encode(`onsite-countersign/v1\n${device}\n${c.seq}\n${c.hash}\n`);
        if (!(await es256(keys.device, msg, csig))) return fail(`BadSignature { seq: ${e.seq} }`);
        countersigned.push(c.seq);
      }
      bodies.set(e.seq, b);
      walked = i + 1;
      prev = e.hash;
      lastSeq = e.seq;
    }
    const tail = lastSigned + 1;
    if (tail < walked) return fail(`Unsealed { from: ${entries[tail].seq} }`);
    return { problem: null, countersigned, bodies };
  }

  // ---- the evidence log (RFC 9162) ----
  async function leafHash(b) { return sha256(cat(Uint8Array.of(0), b)); }
  async function nodeHash(l, r) { return sha256(cat(Uint8Array.of(1), l, r)); }
  async function inclusion(index, size, leaf, path, root) {
    if (index >= size) return false;
    let fn = index, sn = size - 1, r = leaf;
    for (const p of path) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 && eq(r, root);
  }
  async function checkProof(p, entryHash, logKey) {
    const cp = p.checkpoint || {};
    const embedded = unhex(cp.log_key);
    if (!embedded) return "malformed log_key";
    if (logKey && !eq(logKey, embedded)) return "the checkpoint is not signed by the log key";
    const text = `${cp.origin}\n${cp.size}\n${cp.root}\n${cp.at_ms}\n`;
    if (!(await es256(embedded, te.encode(text), unhex(cp.signature)))) return "the checkpoint is not signed by the log key";
    const root = unhex(cp.root), leaf = unhex(entryHash);
    const path = (p.path || []).map(unhex);
    if (!root || root.length !== 32 || !leaf || path.some((x) => !x || x.length !== 32)) return "malformed proof";
    if (!(await inclusion(p.index, cp.size, await leafHash(leaf), path, root))) return "the audit path does not lead to the signed root";
    return null;
  }
  // ---- witnesses (C2SP tlog-cosignature): a policy's keys and quorum ----
  const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  /** `name+<hex key id>+<base64(0x04 || Ed25519 key)>`, its key id checked; null when malformed. */
  async function parseWitness(vkey) {
    // name+id+key, split at the first two `+` (base64 may hold more).
    const all = vkey.trim().split("+");
    const parts = [all[0], all[1], all.slice(2).join("+")];
    if (all.length < 3 || !parts[0] || /\s/.test(parts[0])) return null;
    let key;
    try { key = b64(parts[2]); } catch (_) { return null; }
    const id = unhex(parts[1]);
    if (!id || id.length !== 4 || key.length !== 33 || key[0] !== 4) return null;
    const want = (await sha256(cat(te.encode(parts[0] + "\n"), key))).subarray(0, 4);
    return eq(want, id) ? { name: parts[0], id, key: key.subarray(1) } : null;
  }
  async function ed25519(key, message, sig) {
    try {
      const k = await subtle.importKey("raw", key, { name: "Ed25519" }, false, ["verify"]);
      return await subtle.verify({ name: "Ed25519" }, k, sig, message);
    } catch (_) {
      return false;
    }
  }
  /** The names of the policy's witnesses with a valid cosignature on the note's text. */
  async function cosigners(text, lines, policy) {
    const names = [];
    for (const w of policy.witnesses) {
      for (const l of lines) {
        const m = /^\u2014 (\S+) (\S+)$/.exec(l);
        if (!m || m[1] !== w.name) continue;
        let sig;
        try { sig = b64(m[2]); } catch (_) { continue; }
        if (sig.length !== 76 || !eq(sig.subarray(0, 4), w.id)) continue;
        const ts = new DataView(sig.buffer, sig.byteOffset + 4, 8).getBigUint64(0);
        if (await ed25519(w.key, te.encode(`cosignature/v1\ntime ${ts}\n${text}`), sig.subarray(12))) { names.push(w.name); break; }
      }
    }
    return names;
  }

  async function noteWitnesses(p, policy) {
    if (!p.note) return policy && policy.quorum > 0 ? { problem: "no witness cosigned this tree head" } : { names: [] };
    const [text, sigs] = p.note.split("\n\n");
    const lines = (text || "").split("\n");
    let root;
    try { root = hex(Uint8Array.from(atob(lines[2] || ""), (c) => c.charCodeAt(0))); } catch (_) { return { problem: "the cosigned checkpoint is unreadable" }; }
    if (lines[0] !== p.checkpoint.origin || lines[1] !== String(p.checkpoint.size) || root !== p.checkpoint.root) return { problem: "the cosigned checkpoint states another tree head than the signed one" };
    const names = (sigs || "").split("\n").filter((l) => l.startsWith("— ")).map((l) => l.slice(2).split(" ")[0]);
    if (!policy) return { names: names.slice(1) };
    const cut = p.note.lastIndexOf("\n\n");
    const got = await cosigners(p.note.slice(0, cut) + "\n", p.note.slice(cut + 2).split("\n").filter((l) => l), policy);
    if (got.length < policy.quorum) return { problem: `${got.length} of the ${policy.quorum} witness cosignatures the policy needs` };
    return { names: got, policy: true };
  }

  // ---- the customer's signature: OSS1 strokes and their deterministic SVG (core signature) ----
  function decodeStrokes(b) {
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    if (b.length < 4 || td.decode(b.subarray(0, 4)) !== "OSS1") throw new Error("not a v1 stroke encoding");
    let o = 4;
    const need = (n) => { if (o + n > b.length) throw new Error("truncated"); };
    need(2);
    const count = v.getUint16(o, true); o += 2;
    if (count > 64) throw new Error("too many strokes");
    const strokes = [];
    for (let i = 0; i < count; i++) {
      need(2);
      const n = v.getUint16(o, true); o += 2;
      if (n === 0 || n > 4096) throw new Error("bad point count");
      need(n * 16);
      const s = [];
      for (let k = 0; k < n; k++, o += 16) s.push({ x: v.getFloat32(o, true), y: v.getFloat32(o + 4, true), pressure: v.getFloat32(o + 12, true) });
      strokes.push(s);
    }
    if (o !== b.length) throw new Error("trailing bytes");
    return strokes;
  }
  // Rust's `{:.d}` of an f32: the exact value rounded half to even (f32 * 100 is exact in a double).
  function fixed(x, d) {
    const neg = x < 0 || Object.is(x, -0), scaled = Math.abs(x) * 10 ** d;
    let n = Math.floor(scaled);
    const frac = scaled - n;
    if (frac > 0.5 || (frac === 0.5 && n % 2 === 1)) n += 1;
    const digits = String(n).padStart(d + 1, "0");
    return (neg ? "-" : "") + digits.slice(0, digits.length - d) + "." + digits.slice(digits.length - d);
  }
  function renderSvg(strokes) {
    const f = Math.fround, M = 8;
    let x0 = 3.4028234663852886e38, y0 = x0, x1 = -x0, y1 = -x0;
    for (const s of strokes) for (const p of s) { x0 = Math.min(x0, p.x); y0 = Math.min(y0, p.y); x1 = Math.max(x1, p.x); y1 = Math.max(y1, p.y); }
    if (x0 > x1) { x0 = 0; y0 = 0; x1 = 1; y1 = 1; }
    const w = f(f(x1 - x0) + 2 * M), h = f(f(y1 - y0) + 2 * M);
    let out = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${fixed(w, 1)} ${fixed(h, 1)}" width="${fixed(w, 1)}" height="${fixed(h, 1)}" fill="none" stroke="#1a237e" stroke-linecap="round" stroke-linejoin="round">`;
    for (const s of strokes) {
      let sum = 0;
      for (const p of s) sum = f(sum + p.pressure);
      const mean = f(sum / Math.max(s.length, 1));
      out += `<path stroke-width="${fixed(f(1 + f(3 * mean)), 2)}" d="`;
      s.forEach((p, i) => {
        const x = f(f(p.x - x0) + M), y = f(f(p.y - y0) + M);
        out += (i === 0 ? "M" : "L") + `${fixed(x, 1)} ${fixed(y, 1)}`;
        if (i === 0 && s.length === 1) out += `L${fixed(x, 1)} ${fixed(y, 1)}`;
      });
      out += '"/>';
    }
    return out + "</svg>";
  }

  globalThis.OnsiteVerify = { verifyBundle: null, internals: { canonical, parseCanonical, openZip, crc32, inclusion, rawMember, walkJournal, es256, sha256hex, unhex, hex, isSha, checkProof, noteWitnesses, checkName, SMALL_CAP, validKey, decodeStrokes, renderSvg, fixed, parseWitness } };
})();
