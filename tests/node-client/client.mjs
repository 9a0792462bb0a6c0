// An Onsite device written only from docs/sync-protocol.md: enrolment, batched CBOR sync
// with Automerge changes, and a journal upload. No code of the project is used.
import crypto from "node:crypto";
import * as Automerge from "@automerge/automerge";
import cbor from "cbor";

const Str = Automerge.ImmutableString ?? Automerge.RawString;
const ZERO_HASH = "0".repeat(64);
const hex = (b) => Buffer.from(b).toString("hex");
const sha256 = (b) => crypto.createHash("sha256").update(b).digest("hex");

export class Device {
  constructor(server) {
    this.server = server;
    this.id = crypto.randomBytes(16).toString("hex"); // 32 lowercase hex digits
    const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    this.privateKey = privateKey;
    const jwk = publicKey.export({ format: "jwk" });
    // SEC1 uncompressed point: 0x04 || X || Y.
    this.publicKey = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, "base64url"), Buffer.from(jwk.y, "base64url")]);
    this.cursor = 0;
    this.docs = new Map();
    this.journal = { seq: 0, head: ZERO_HASH };
  }

  sign(bytes) {
    // ES256: ECDSA P-256 over SHA-256, signature as the 64 bytes r || s.
    return crypto.sign("sha256", bytes, { key: this.privateKey, dsaEncoding: "ieee-p1363" });
  }

  async enrol(code) {
    const publicKey = hex(this.publicKey);
    const message = `onsite-enrol/v1\n${code}\n${this.id}\n${publicKey}\n`;
    const body = { code, device_id: this.id, public_key: publicKey, signature: hex(this.sign(Buffer.from(message))) };
    const r = await fetch(`${this.server}/v1/enrol`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const answer = await r.json();
    if (!r.ok) throw new Error(`enrol: ${r.status} ${JSON.stringify(answer)}`);
    this.token = answer.token;
    return answer;
  }

  async post(path, body, contentType) {
    const r = await fetch(`${this.server}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.token}`, "content-type": contentType },
      body,
    });
    const bytes = Buffer.from(await r.arrayBuffer());
    if (!r.ok) throw new Error(`${path}: ${r.status} ${bytes.toString()}`);
    return bytes;
  }

  /** One sync request: pushes `push` ([{id, changes}]) and applies what comes down. */
  async sync(push = []) {
    const request = { v: 1, cursor: this.cursor, push: push.map((p) => ({ id: p.id, changes: Buffer.from(p.changes) })) };
    const answer = cbor.decodeFirstSync(await this.post("/v1/sync", cbor.encode(request), "application/cbor"));
    for (const d of answer.docs) {
      const bytes = new Uint8Array(d.bytes);
      const known = this.docs.get(d.id);
      this.docs.set(d.id, known ? Automerge.loadIncremental(known, bytes) : Automerge.load(bytes, { actor: this.id }));
    }
    this.cursor = answer.cursor;
    return answer;
  }

  /** Applies `fn` to order `id` and returns the push for it (the new changes only). */
  edit(id, fn) {
    const before = this.docs.get(id);
    const after = Automerge.change(before, fn);
    this.docs.set(id, after);
    const changes = Automerge.getChanges(before, after);
    return { id, changes: Buffer.concat(changes.map((c) => Buffer.from(c))) };
  }

  note(id, text, atMs) {
    return this.edit(id, (d) => {
      d.notes.push({ at: atMs, device: new Str(this.id), text: new Str(text) });
    });
  }

  /** One signed journal entry about order `order`, chained after the previous one. */
  entry(kind, order, payload, atMs) {
    const payloadBytes = Buffer.from(JSON.stringify(payload));
    const seq = this.journal.seq + 1;
    const body = {
      v: 1,
      device: this.id,
      seq,
      prev: this.journal.head,
      at_ms: atMs,
      mono_ms: seq,
      ticket: null,
      kind,
      order,
      payload_sha256: sha256(payloadBytes),
      payload,
      fix: null,
    };
    const bytes = Buffer.from(JSON.stringify(body));
    this.journal = { seq, head: sha256(bytes) };
    return { seq, body: bytes, signature: this.sign(bytes) };
  }

  async uploadJournal(entries) {
    const upload = { v: 1, entries, receipts: [] };
    return JSON.parse((await this.post("/v1/journal", cbor.encode(upload), "application/cbor")).toString());
  }
}
