// The Rust verifier (`onsite verify --json`) and the browser's JavaScript verifier
// (server/src/console/assets/verify*.js, run here in Node with the same WebCrypto and
// DecompressionStream) agree on every case of the mutation corpus: the same verdict and the
// same failing members. The corpus: the kept v1 bundle and a fresh v2 bundle from the demo
// device; in each, bytes of every member flipped (the archive rebuilt around them), a photo
// rewritten with its manifest entry re-hashed as a forger would, and raw bytes of the archive
// file flipped.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { execFileSync, spawnSync } from "node:child_process";
import { ROOT, ONSITE } from "./harness.mjs";

import { V, members, zip } from "./zipkit.mjs";
const work = mkdtempSync(join(tmpdir(), "onsite-agreement-"));
const bundles = {};
const records = {};

before(() => {
  bundles.v1 = new Uint8Array(readFileSync(join(ROOT, "tests/fixtures/v1/bundle-WO-20261123-0001.zip")));
  const dev = join(work, "demo");
  const out = execFileSync(ONSITE, ["demo", "--data", dev], { encoding: "utf8" });
  const path = out.match(/arbitration bundle: (\S+\.zip)/)[1];
  bundles.v2 = new Uint8Array(readFileSync(path));
  records.v1 = new Uint8Array(readFileSync(join(ROOT, "tests/fixtures/v1/service-record-eng-017.json")));
  const rec = join(work, "record.json");
  execFileSync(ONSITE, ["--data", dev, "profile", "export", rec]);
  records.v2 = new Uint8Array(readFileSync(rec));
});

function rust(bytes) {
  const f = join(work, "case.zip");
  writeFileSync(f, bytes);
  const r = spawnSync(ONSITE, ["verify", "--json", f], { encoding: "utf8" });
  return JSON.parse(r.stdout);
}

const failing = (checks) => [...new Set(checks.filter((c) => !c.passed).map((c) => c.subject))].sort();

async function agree(name, bytes, stats) {
  const [r, j] = [rust(bytes), await V.verifyBundle(bytes, {})];
  stats.cases++;
  if (!r.ok) stats.invalid++;
  assert.equal(j.ok, r.ok, `${name}: Rust says ${r.ok}, JavaScript says ${j.ok}\nRust: ${JSON.stringify(failing(r.checks))}\nJS: ${JSON.stringify(j.checks.filter((c) => !c.passed))}`);
  assert.deepEqual(failing(j.checks), failing(r.checks), `${name}: the failing members differ\nRust: ${JSON.stringify(r.checks.filter((c) => !c.passed))}\nJS: ${JSON.stringify(j.checks.filter((c) => !c.passed))}`);
}

for (const which of ["v1", "v2"]) {
  test(`${which}: the untouched bundle is valid to both`, async () => {
    const stats = { cases: 0, invalid: 0 };
    await agree(`${which} as exported`, bundles[which], stats);
    await agree(`${which} rebuilt stored`, zip(await members(bundles[which])), stats);
    assert.equal(stats.invalid, 0);
    // And every check each verifier lists is one the other lists: same names, same members.
    const list = (checks) => checks.map((c) => `${c.passed ? "pass" : "FAIL"} ${c.check} ${c.subject}`).sort();
    assert.deepEqual(list((await V.verifyBundle(bundles[which], {})).checks), list(rust(bundles[which]).checks));
  });

  test(`${which}: a flipped byte in any member, anywhere`, async () => {
    const orig = await members(bundles[which]);
    const stats = { cases: 0, invalid: 0 };
    for (let i = 0; i < orig.length; i++) {
      const [name, body] = orig[i];
      const n = Math.min(body.length, 12);
      for (let k = 0; k < n; k++) {
        const pos = n === body.length ? k : Math.floor((k * (body.length - 1)) / (n - 1));
        const m = orig.map(([a, b]) => [a, b]);
        m[i] = [name, Uint8Array.from(body)];
        m[i][1][pos] ^= 0x20;
        await agree(`${which} ${name} byte ${pos}`, zip(m), stats);
      }
    }
    console.log(`figure agreement.${which}.member_flips ${stats.cases} cases (${stats.invalid} invalid)`);
    assert.equal(stats.invalid, stats.cases, "every flip is caught");
  });

  test(`${which}: a photo rewritten with its manifest entry re-hashed, and raw archive flips`, async () => {
    const orig = await members(bundles[which]);
    const stats = { cases: 0, invalid: 0 };
    const pi = orig.findIndex(([n]) => n.startsWith("photos/") || n.startsWith("thumbs/"));
    const m = orig.map(([a, b]) => [a, Uint8Array.from(b)]);
    m[pi][1][10] ^= 1;
    const sha = createHash("sha256").update(m[pi][1]).digest("hex");
    const old = m[pi][0].replace(/^(photos|thumbs)\//, "").replace(/\.jpg$/, "");
    m[0][1] = new TextEncoder().encode(new TextDecoder().decode(m[0][1]).replace(old, sha));
    m[pi][0] = m[pi][0].replace(old, sha);
    await agree(`${which} forged photo`, zip(m), stats);
    const raw = bundles[which];
    for (let k = 0; k < 60; k++) {
      const b = Uint8Array.from(raw);
      const pos = Math.floor((k * (raw.length - 1)) / 59);
      b[pos] ^= 0x55;
      await agree(`${which} raw byte ${pos}`, b, stats);
    }
    for (const cut of [0, 10, 100, raw.length >> 1, raw.length - 1]) await agree(`${which} cut at ${cut}`, raw.subarray(0, cut), stats);
    console.log(`figure agreement.${which}.forgeries_and_raw ${stats.cases} cases (${stats.invalid} invalid)`);
  });
}

for (const which of ["v1", "v2"]) {
  test(`${which} service record: valid to both, and every flipped byte judged alike`, async () => {
    const rec = records[which];
    const judge = async (name, bytes) => {
      const [r, j] = [rust(bytes), await V.verify(bytes, {})];
      assert.equal(j.ok, r.ok, `${name}: Rust ${r.ok}, JS ${j.ok}\nRust: ${JSON.stringify(r.checks.filter((c) => !c.passed))}\nJS: ${JSON.stringify(j.checks.filter((c) => !c.passed))}`);
      assert.deepEqual(failing(j.checks), failing(r.checks), `${name}: the failing subjects differ\nRust: ${JSON.stringify(r.checks.filter((c) => !c.passed))}\nJS: ${JSON.stringify(j.checks.filter((c) => !c.passed))}`);
      return r.ok;
    };
    assert.equal(await judge(`${which} record`, rec), true);
    const list = (checks) => checks.map((c) => `${c.passed ? "pass" : "FAIL"} ${c.check} ${c.subject}`).sort();
    assert.deepEqual(list((await V.verifyRecord(rec, {})).checks), list(rust(rec).checks), "the same checks, passed alike");
    let cases = 0, invalid = 0;
    for (const mask of [0x01, 0x20]) {
      for (let k = 0; k < 120; k++) {
        const b = Uint8Array.from(rec);
        const pos = Math.floor((k * (rec.length - 1)) / 119);
        b[pos] ^= mask;
        cases++;
        if (!(await judge(`${which} record byte ${pos} ^ ${mask}`, b))) invalid++;
      }
    }
    console.log(`figure agreement.${which}.record_flips ${cases} cases (${invalid} invalid)`);
    assert.equal(invalid, cases, "every flip is caught, a hex digit's case too");
  });
}

// Witnesses: cosignatures made here with Node's own Ed25519 (a third implementation) over the
// v2 bundle's tree heads, checked by Rust (ring) and by the browser's verifier (WebCrypto)
// under the same policies. The rewritten proofs member fails its hash in both; what is
// compared is each proof's `log.witnessed` verdict.
test("witness policies: Rust and JavaScript agree on cosignatures made by a third implementation", async () => {
  const { generateKeyPairSync, sign, createHash: hash, randomBytes } = await import("node:crypto");
  const witness = (name) => {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
    const keyed = Buffer.concat([Buffer.from([4]), raw]);
    const id = hash("sha256").update(Buffer.concat([Buffer.from(name + "\n"), keyed])).digest().subarray(0, 4);
    return { name, id, privateKey, vkey: `${name}+${id.toString("hex")}+${keyed.toString("base64")}` };
  };
  const [w1, w2] = [witness("w1.example/witness"), witness("w2.example/witness")];
  const cosign = (w, text, flip = false) => {
    const ts = 1796000000n;
    const t = Buffer.alloc(8);
    t.writeBigUInt64BE(ts);
    const sig = sign(null, Buffer.from(`cosignature/v1\ntime ${ts}\n${text}`), w.privateKey);
    if (flip) sig[5] ^= 1;
    return `— ${w.name} ${Buffer.concat([w.id, t, sig]).toString("base64")}`;
  };
  const orig = await members(bundles.v2);
  const pi = orig.findIndex(([n]) => n === "log/proofs.json");
  const withNotes = (lines) => {
    const proofs = JSON.parse(new TextDecoder().decode(orig[pi][1]));
    for (const p of proofs) {
      const c = p.checkpoint;
      const text = `${c.origin}\n${c.size}\n${Buffer.from(c.root, "hex").toString("base64")}\n`;
      p.note = `${text}\n— ${c.origin} ${randomBytes(68).toString("base64")}\n${lines(text).join("\n")}\n`;
    }
    const m = orig.map(([a, b]) => [a, b]);
    m[pi] = ["log/proofs.json", new TextEncoder().encode(JSON.stringify(proofs))];
    return zip(m);
  };
  const witnessed = (checks) => checks.filter((c) => c.check === "log.witnessed").map((c) => `${c.subject} ${c.passed}`).sort();
  const cases = [
    { name: "w1 cosigned, policy w1", bytes: withNotes((t) => [cosign(w1, t)]), keys: [w1], quorum: 1, pass: true },
    { name: "w1 and w2 cosigned, policy both", bytes: withNotes((t) => [cosign(w1, t), cosign(w2, t)]), keys: [w1, w2], quorum: 2, pass: true },
    { name: "w1 cosigned, policy needs both", bytes: withNotes((t) => [cosign(w1, t)]), keys: [w1, w2], quorum: 2, pass: false },
    { name: "w1 cosigned, policy w2", bytes: withNotes((t) => [cosign(w1, t)]), keys: [w2], quorum: 1, pass: false },
    { name: "a flipped cosignature", bytes: withNotes((t) => [cosign(w1, t, true)]), keys: [w1], quorum: 1, pass: false },
    { name: "no note at all", bytes: bundles.v2, keys: [w1], quorum: 1, pass: false },
  ];
  for (const c of cases) {
    const f = join(work, "witnessed.zip");
    writeFileSync(f, c.bytes);
    const args = ["verify", "--json", ...c.keys.flatMap((w) => ["--witness", w.vkey]), "--witness-quorum", String(c.quorum), f];
    const r = JSON.parse(spawnSync(ONSITE, args, { encoding: "utf8" }).stdout);
    const policy = { witnesses: await Promise.all(c.keys.map((w) => V.internals.parseWitness(w.vkey))), quorum: c.quorum };
    assert.ok(policy.witnesses.every(Boolean), "the verifier keys parse");
    const j = await V.verifyBundle(c.bytes, { witnessPolicy: policy });
    const [rw, jw] = [witnessed(r.checks), witnessed(j.checks)];
    assert.ok(rw.length > 0, `${c.name}: Rust checked the witnesses`);
    assert.deepEqual(jw, rw, `${c.name}: the witness verdicts differ`);
    assert.ok(rw.every((x) => x.endsWith(String(c.pass))), `${c.name}: expected ${c.pass}: ${rw}`);
  }
  assert.equal(await V.internals.parseWitness(w1.vkey.replace(/\+[0-9a-f]{8}\+/, "+00000000+")), null, "a key id that is not the key's is refused");
});
