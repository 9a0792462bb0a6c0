// Onsite service-record verifier (数字化履历) in JavaScript, written from docs/bundle-format.md
// ("Service records"): the device's signature over the canonical record, each order's signed
// receipt, journal slice and log proof, the figures recomputed, the provider's
// certifications. Check names and subjects are those of core/src/profile/verify.rs. Needs
// verify.js loaded first.
"use strict";
(function () {
  const V = globalThis.OnsiteVerify;
  const { parseCanonical, canonical, walkJournal, es256, sha256hex, unhex, checkProof, validKey } = V.internals;
  const te = new TextEncoder();
  const td = new TextDecoder("utf-8", { fatal: true });
  const CERT_KIND = "onsite-certification";

  // The record as the Rust reader keeps it (known fields only; a missing Option is null), so
  // the canonical bytes the device signed are rebuilt the same way.
  const opt = (v) => (v === undefined ? null : v);
  function need(o, fields, what) {
    if (!o || typeof o !== "object" || Array.isArray(o)) throw new Error(`${what} is not an object`);
    for (const f of fields) if (!(f in o)) throw new Error(`missing field \`${f}\``);
  }
  const isHex = (v) => typeof v === "string" && /^([0-9a-f]{2})*$/.test(v);
  const entry = (e) => {
    need(e, ["seq", "body", "hash", "signature"], "an entry");
    // Bodies and signatures are bytes, read from lowercase hex: anything else is not an entry.
    if (!isHex(e.body) || !isHex(e.signature)) throw new Error("bad hex");
    if (!Number.isInteger(e.seq) || e.seq < 0 || typeof e.hash !== "string") throw new Error("an entry field has the wrong type");
    return { seq: e.seq, body: e.body, hash: e.hash, signature: e.signature };
  };
  function shape(file) {
    need(file, ["record", "signature"], "the file");
    const r = file.record;
    need(r, ["format", "version", "engineer", "provider", "device_id", "device_key", "generated_at", "orders", "aggregates", "certifications"], "the record");
    const out = {
      format: r.format, version: r.version, engineer: r.engineer, provider: r.provider, device_id: r.device_id, device_key: r.device_key,
      generated_at: r.generated_at, log_key: opt(r.log_key),
      orders: r.orders.map((o) => {
        need(o, ["order_id", "category", "brand", "fault_kind", "visits", "first_time_fix", "help_requests", "receipt", "journal"], "an order");
        need(o.receipt, ["revision", "canonical", "receipt_sha256", "message", "signature", "journal_seq", "signed_at_ms"], "a receipt");
        const x = {
          order_id: o.order_id, category: o.category, brand: o.brand, fault_kind: o.fault_kind, work_minutes: opt(o.work_minutes), rating: opt(o.rating),
          visits: o.visits, first_time_fix: o.first_time_fix, help_requests: o.help_requests,
          receipt: { ...o.receipt, strokes_sha256: opt(o.receipt.strokes_sha256) },
          journal: o.journal.map(entry), proof: opt(o.proof),
        };
        if (Array.isArray(o.sessions) && o.sessions.length) x.sessions = o.sessions.map(entry);
        return x;
      }),
      aggregates: r.aggregates,
      certifications: r.certifications.map((c) => { need(c, ["body", "signature"], "a certification"); return { body: c.body, signature: c.signature }; }),
    };
    if (r.key_attestation !== undefined && r.key_attestation !== null) out.key_attestation = r.key_attestation;
    return out;
  }

  async function receiptWithoutStrokes(o) {
    const rc = o.receipt, bytes = te.encode(rc.canonical);
    const r = parseCanonical(bytes);
    if ((await sha256hex(bytes)) !== rc.receipt_sha256) throw new Error("receipt bytes do not match their hash");
    if (r.v !== 1 || r.kind !== "onsite.receipt") throw new Error("receipt.version");
    const bound = r.outcome && r.outcome.decision === "signed" ? r.outcome.strokes_sha256 : null;
    if (bound !== rc.strokes_sha256 || r.order !== o.order_id || r.revision !== rc.revision) throw new Error("the receipt does not match its entry");
    const message = canonical({ v: 1, kind: "onsite.receipt.signature", order: r.order, revision: r.revision, receipt_sha256: rc.receipt_sha256, strokes_sha256: rc.strokes_sha256, journal_head: r.journal_head });
    if (message !== rc.message || !(await es256(o.deviceKey, te.encode(rc.message), unhex(rc.signature)))) throw new Error("the device signature over the receipt does not verify");
    return r;
  }

  function body(e) { try { return JSON.parse(td.decode(unhex(e.body))); } catch (_) { return null; } }

  function derive(orderId, r, journal) {
    let visits = 0, setback = false, help = 0;
    for (const e of journal) {
      const b = body(e);
      if (!b || b.order !== orderId) continue;
      if (b.kind === "transition") {
        const to = (b.payload && b.payload.to) || "";
        if (to === "on_site") visits++;
        else if (["rescheduled", "carried_to_workshop", "unresolved"].includes(to)) setback = true;
      } else if (b.kind === "help_request") help++;
    }
    const signed = r.outcome && r.outcome.decision === "signed";
    return [visits, signed && visits === 1 && !setback, help];
  }

  function aggregate(orders) {
    const a = { orders: orders.length, by_category: {}, faults_solved: {}, first_time_fixes: 0, first_time_fix_permille: 0, rated: 0, rating_avg_centi: 0, work_minutes_total: 0, work_minutes_median: null, help_requests: 0, logged: 0 };
    const minutes = [];
    let ratingSum = 0;
    for (const o of orders) {
      a.by_category[o.category] = (a.by_category[o.category] || 0) + 1;
      for (const k of o.fault_kind.length ? o.fault_kind : ["unclassified"]) {
        const key = `${o.category} / ${k}`;
        a.faults_solved[key] = (a.faults_solved[key] || 0) + 1;
      }
      a.first_time_fixes += o.first_time_fix ? 1 : 0;
      if (o.rating !== null) { a.rated++; ratingSum += o.rating; }
      if (o.work_minutes !== null) { minutes.push(o.work_minutes); a.work_minutes_total += o.work_minutes; }
      a.help_requests += o.help_requests;
      a.logged += o.proof ? 1 : 0;
    }
    if (a.orders) a.first_time_fix_permille = Math.floor((a.first_time_fixes * 1000) / a.orders);
    if (a.rated) a.rating_avg_centi = Math.floor((ratingSum * 100) / a.rated);
    minutes.sort((x, y) => x - y);
    if (minutes.length) a.work_minutes_median = minutes[Math.floor((minutes.length - 1) / 2)];
    return a;
  }

  async function verifyRecord(bytes, opts = {}) {
    const checks = [];
    const add = (check, subject, passed, detail = "") => checks.push({ check, subject, passed, detail });
    const out = { kind: "record", ok: false, checks, summary: null };
    let rec, file;
    try {
      file = JSON.parse(td.decode(bytes));
      rec = shape(file);
    } catch (e) {
      add("record.parse", "file", false, e.message);
      return out;
    }
    const okFormat = rec.format === "onsite-service-record" && [1, 2].includes(rec.version);
    add("record.format", "record", okFormat, okFormat ? `${rec.format} v${rec.version}` : "unknown format");
    const deviceKey = unhex(rec.device_key);
    if (!deviceKey) add("record.device_key", "record", false, "the record's device key is not hex");
    if (opts.deviceKey) {
      const same = deviceKey && deviceKey.length === opts.deviceKey.length && deviceKey.every((x, i) => x === opts.deviceKey[i]);
      add("record.device_key", "record", !!same, same ? "the pinned device key" : "signed by another device key");
    }
    const sigOk = !!deviceKey && (await es256(deviceKey, te.encode(canonical(rec)), unhex(file.signature)));
    add("record.signature", "record", sigOk, sigOk ? "device signature over the canonical record" : "the record was changed after signing, or not signed by its device key");

    const recomputed = [], orders = [];
    for (const o of rec.orders) {
      const subject = o.order_id;
      let r;
      try { r = await receiptWithoutStrokes({ ...o, deviceKey: deviceKey || new Uint8Array() }); } catch (e) { add("order.receipt", subject, false, e.message); continue; }
      add("order.receipt", subject, true, `receipt r${o.receipt.revision} signed by the device`);
      const keys = { device: deviceKey, sessions: new Map() };
      let problem = null;
      if (o.sessions) {
        const s = await walkJournal(o.sessions, { device: deviceKey, sessions: new Map() }, rec.device_id, "standalone");
        if (s.problem) problem = s.problem;
        else for (const b of s.bodies.values()) {
          if (b.kind !== "session_open") { problem = `Malformed { seq: ${b.seq}, reason: "not a session_open entry" }`; break; }
          keys.sessions.set(b.seq, { key: unhex(b.payload.session_key), expires_at_ms: b.payload.expires_at_ms });
        }
      }
      if (!problem) problem = (await walkJournal(o.journal, keys, rec.device_id, "slice", subject)).problem;
      add("order.journal", subject, !problem, problem || `${o.journal.length} entries, complete per-order chain`);
      const e = o.journal.find((x) => x.seq === o.receipt.journal_seq);
      const eb = e && body(e);
      const bound = eb && eb.payload && eb.payload.receipt_sha256 === o.receipt.receipt_sha256;
      add("order.receipt_entry", subject, !!bound, bound ? `journal entry ${o.receipt.journal_seq} binds the receipt` : "no journal entry binds this receipt");
      const [visits, ftf, help] = derive(subject, r, o.journal);
      const fieldsOk = o.category === r.equipment.category && o.brand === r.equipment.brand && canonical(o.fault_kind) === canonical(r.diagnosis.fault_kind)
        && o.work_minutes === opt(r.times.work_minutes) && o.rating === (r.rating ? r.rating.score : null) && o.visits === visits && o.first_time_fix === ftf
        && o.help_requests === help && r.outcome.decision === "signed";
      add("order.fields", subject, fieldsOk, fieldsOk ? "read from the receipt and the journal" : "the entry claims what its receipt and journal do not say");
      let logged = false;
      if (o.proof && e) {
        const p = await checkProof(o.proof, e.hash, opts.logKey);
        if (p) add("order.logged", subject, false, p);
        else if (o.proof.seq !== e.seq) add("order.logged", subject, false, "the proof is for another entry");
        else { add("order.logged", subject, true, `leaf ${o.proof.index} of the provider's log`); logged = true; }
      } else if (opts.logKey) add("order.logged", subject, false, "no proof that the provider's log holds this receipt");
      recomputed.push({ ...o, proof: logged ? o.proof : null });
      orders.push({ id: subject, category: o.category, brand: o.brand, fault_kind: o.fault_kind, work_minutes: o.work_minutes, rating: o.rating, first_time_fix: o.first_time_fix, logged });
    }
    const agg = aggregate(recomputed);
    const aggOk = canonical(agg) === canonical(rec.aggregates);
    add("record.aggregates", "record", aggOk, aggOk ? `${agg.orders} orders, recomputed` : "the figures do not follow from the orders");
    let level = null;
    for (const c of rec.certifications) {
      const key = opts.logKey || unhex(rec.log_key || "");
      if (!key) { add("certification", "?", false, "no log key"); continue; }
      try {
        if (!(await es256(key, te.encode(c.body), unhex(c.signature)))) throw new Error("not signed by the provider's key");
        const cert = parseCanonical(te.encode(c.body));
        if (cert.kind !== CERT_KIND || !(cert.level >= 1 && cert.level <= 5)) throw new Error("not a certification");
        if (cert.engineer === rec.engineer) { level = Math.max(level || 0, cert.level); add("certification", cert.id, true, `level ${cert.level} ${cert.title}`); }
        else add("certification", cert.id, false, "issued to another engineer");
      } catch (err) { add("certification", "?", false, err.message); }
    }
    if (rec.key_attestation) add("record.key_attestation", "device key", true, "present; its certificate chain is checked by `onsite verify`, not in the browser");
    out.summary = { engineer: rec.engineer, provider: rec.provider, device_id: rec.device_id, generated_at: rec.generated_at, orders, logged: agg.logged, level, aggregates: rec.aggregates, device_key_valid: await validKey(deviceKey) };
    out.ok = checks.length > 0 && checks.every((c) => c.passed);
    return out;
  }

  V.verifyRecord = verifyRecord;
  /** A service record (JSON: its first byte is `{`) or an arbitration bundle, as `onsite verify` tells them apart. */
  V.verify = (bytes, opts) => (bytes[0] === 0x7b ? verifyRecord(bytes, opts) : V.verifyBundle(bytes, opts));
})();
