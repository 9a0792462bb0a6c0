// Onsite bundle verifier, part 2: the checks in the order the Rust verifier makes them
// (core/src/bundle/verify.rs), each named the same and about the same member, so the two
// can be compared case by case. Needs verify.js loaded first.
"use strict";
(function () {
  const V = globalThis.OnsiteVerify;
  const { parseCanonical, openZip, walkJournal, es256, sha256hex, unhex, hex, isSha, checkProof, noteWitnesses, checkName, SMALL_CAP, validKey, canonical, decodeStrokes, renderSvg } = V.internals;
  const te = new TextEncoder();
  const td = new TextDecoder("utf-8", { fatal: true });
  const ROLES = { RECEIPT: "receipt", PHOTO: "photo", THUMB: "thumbnail", JOURNAL: "journal", TICKETS: "time_tickets", SESSIONS: "journal_sessions", LOG: "log_proofs", ATTEST: "key_attestation" };
  const iso = (ms) => new Date(ms).toISOString().replace(".000Z", "Z");

  async function verifyBundle(bytes, opts = {}) {
    const checks = [];
    const add = (check, subject, passed, detail = "") => { checks.push({ check, subject, passed, detail }); return passed; };
    const files = new Map();
    const out = { ok: false, bundle_version: null, summary: null, checks, files, journal: [], proofs: [] };
    try {
      await run(bytes, opts, add, files, out);
    } catch (e) {
      add("verifier.error", "bundle", false, String(e && e.message || e));
    }
    out.ok = checks.length > 0 && checks.every((c) => c.passed);
    return out;
  }

  async function run(bytes, opts, add, files, out) {
    let ar;
    try { ar = openZip(bytes); } catch (e) { add("archive.structure", "bundle", false, e.message); return; }
    add("archive.structure", "bundle", true, `${ar.names.length} members, names and sizes safe`);
    let manifestBytes;
    try { manifestBytes = await ar.read("manifest.json", 4 << 20); } catch (e) { add("manifest.present", "manifest.json", false, e.message); return; }
    let m;
    try { m = parseCanonical(manifestBytes); } catch (e) { add("manifest.canonical", "manifest.json", false, e.message); return; }
    out.bundle_version = typeof m.version === "number" ? m.version : null;
    if (m.format !== "onsite.bundle" || ![1, 2].includes(m.version)) { add("manifest.version", "manifest.json", false, `format ${m.format} version ${m.version}; this verifier reads onsite.bundle versions 1, 2`); return; }
    const schemaOk = m.device && typeof m.device.id === "string" && typeof m.device.public_key === "string" && Array.isArray(m.members) && typeof m.order === "string"
      && m.members.every((x) => x && typeof x.path === "string" && typeof x.role === "string" && typeof x.sha256 === "string" && Number.isInteger(x.size));
    if (!schemaOk) { add("manifest.schema", "manifest.json", false, "the manifest does not have the bundle's fields"); return; }
    add("manifest.version", "manifest.json", true, `onsite.bundle v${m.version}`);

    const publicKey = unhex(m.device.public_key);
    if (!(await validKey(publicKey))) { add("device.key", "manifest.json", false, "the device public key is not a P-256 key"); return; }
    const keyFp = await sha256hex(publicKey);
    if (opts.deviceKey && hex(opts.deviceKey) !== hex(publicKey)) add("device.key", "manifest.json", false, "the bundle's device key is not the registered one");
    else add("device.key", "manifest.json", true, opts.deviceKey ? "matches the registered device key" : `SHA-256 ${keyFp}; not compared with a registration`);
    try {
      const sigText = td.decode(await ar.read("manifest.sig", 1024));
      const sig = unhex(sigText);
      if (!sig || sig.length !== 64 || hex(sig) !== sigText) add("manifest.signature", "manifest.sig", false, "not 64 bytes of lowercase hex");
      else if (await es256(publicKey, manifestBytes, sig)) add("manifest.signature", "manifest.sig", true, "signed by the device key");
      else add("manifest.signature", "manifest.sig", false, "the manifest signature does not verify");
    } catch (e) { add("manifest.signature", "manifest.sig", false, e.message); }

    const listed = new Set(m.members.map((x) => x.path));
    if (listed.size !== m.members.length) add("manifest.members", "manifest.json", false, "the manifest lists a path twice");
    for (const name of ar.names) if (name !== "manifest.json" && name !== "manifest.sig" && !listed.has(name)) add("member.listed", name, false, "the archive holds a member the manifest does not list");
    const small = new Map(), byRole = new Map();
    for (const x of m.members) {
      if (!byRole.has(x.role)) byRole.set(x.role, []);
      byRole.get(x.role).push(x.path);
      const bad = checkName(x.path);
      if (bad) { add("member.name", x.path, false, bad); continue; }
      try {
        const b = await ar.read(x.path, x.role === ROLES.PHOTO || x.role === ROLES.THUMB ? 64 << 20 : SMALL_CAP);
        files.set(x.path, b);
        if (x.role !== ROLES.PHOTO && x.role !== ROLES.THUMB) small.set(x.path, b);
        const sha = await sha256hex(b);
        if (sha === x.sha256 && b.length === x.size) add("member.hash", x.path, true);
        else add("member.hash", x.path, false, `holds ${b.length} bytes with SHA-256 ${sha}; the manifest says ${x.size} bytes, ${x.sha256}`);
      } catch (e) { add("member.hash", x.path, false, e.message); }
    }
    const json = (path) => { const b = small.get(path); if (!b) throw new Error("missing"); return JSON.parse(td.decode(b)); };
    const first = (role) => (byRole.get(role) || [])[0];

    // ---- journal ----
    const device = m.device.id;
    const keys = { device: publicKey, sessions: new Map() };
    const sessionsPath = first(ROLES.SESSIONS);
    if (sessionsPath) {
      try {
        const s = json(sessionsPath);
        const r = await walkJournal(s, { device: publicKey, sessions: new Map() }, device, "standalone");
        if (r.problem) throw new Error(r.problem);
        for (const seq of r.bodies.keys()) if (r.bodies.get(seq).kind !== "session_open") throw new Error(`Malformed { seq: ${seq}, reason: "not a session_open entry" }`);
        for (const b of r.bodies.values()) keys.sessions.set(b.seq, { key: unhex(b.payload.session_key), expires_at_ms: b.payload.expires_at_ms });
        add("journal.sessions", sessionsPath, true, `${s.length} session key(s) certified by the device key`);
      } catch (e) { add("journal.sessions", sessionsPath, false, e.message); }
    }
    let entries = [], bodies = new Map();
    const jpath = first(ROLES.JOURNAL);
    if (jpath) {
      try {
        entries = json(jpath);
        const r = await walkJournal(entries, keys, device, "slice", m.order);
        bodies = allBodies(entries);
        if (r.problem) add("journal.chain", jpath, false, r.problem);
        else add("journal.chain", jpath, true, `${entries.length} entries, per-order chain and signatures hold`);
        if (!r.problem) for (const seq of r.countersigned) add("journal.countersigned", `entry ${seq}`, true, "countersigned by the device key");
      } catch (e) { add("journal.chain", jpath, false, e.message); entries = []; }
    } else add("journal.present", "journal/order.json", false, "the bundle has no journal");
    out.journal = [...bodies.values()].sort((a, b) => a.seq - b.seq);
    const tpath = first(ROLES.TICKETS);
    let tickets = [];
    if (tpath) {
      try {
        tickets = json(tpath);
        const r = await walkJournal(tickets, { device: publicKey, sessions: new Map(keys.sessions) }, device, "standalone");
        if (r.problem) add("journal.tickets", tpath, false, r.problem);
        else if ([...r.bodies.values()].some((b) => b.kind !== "time_ticket")) add("journal.tickets", tpath, false, "holds entries that are not time tickets");
        else add("journal.tickets", tpath, true, `${tickets.length} time-ticket entries`);
      } catch (e) { add("journal.tickets", tpath, false, e.message); }
    }

    // ---- the evidence log ----
    const logged = new Map();
    const lpath = first(ROLES.LOG);
    if (lpath) {
      let proofs = null;
      try {
        proofs = json(lpath);
        if (!Array.isArray(proofs)) throw new Error("not a list of proofs");
        proofs.forEach(proofShape);
      } catch (e) { add("log.inclusion", lpath, false, e.message); proofs = null; }
      for (const p of proofs || []) {
        const subject = `${lpath} #${p.seq}`;
        const entry = entries.find((e) => e.seq === p.seq);
        if (!entry) { add("log.inclusion", subject, false, "proves an entry the journal slice does not hold"); continue; }
        const problem = await checkProof(p, entry.hash, opts.logKey);
        if (problem) add("log.inclusion", subject, false, problem);
        else {
          const what = `leaf ${p.index} of ${p.checkpoint.size} in ${p.checkpoint.origin} (checkpoint signed ${iso(p.checkpoint.at_ms)})`;
          add("log.inclusion", subject, true, what);
          logged.set(p.seq, what);
          out.proofs.push({ seq: p.seq, what });
        }
        const w = await noteWitnesses(p, opts.witnessPolicy);
        if (w.problem) add("log.witnessed", subject, false, w.problem);
        else if (w.policy) add("log.witnessed", subject, true, `cosigned by ${w.names.join(", ")}`);
        else if (w.names.length) add("log.witnessed", subject, true, `cosignatures from ${w.names.join(", ")} (not checked: no witness policy given)`);
      }
    }
    const apath = first(ROLES.ATTEST);
    if (apath) {
      try { json(apath); add("key.attestation", apath, true, "present; its certificate chain is checked by `onsite verify`, not in the browser"); } catch (e) { add("key.attestation", apath, false, e.message); }
    }

    // ---- receipts ----
    const receipts = new Map();
    for (const path of byRole.get(ROLES.RECEIPT) || []) {
      const mm = /^receipt\/r(\d+)\.json$/.exec(path);
      if (!mm) { add("receipt.name", path, false, "receipt members are named receipt/rN.json"); continue; }
      const n = Number(mm[1]), subject = `receipt r${n}`, signedPath = `receipt/r${n}.signed.json`, strokesPath = `signature/r${n}.oss1`;
      let part;
      try { part = json(signedPath); signedPartShape(part); } catch (e) { add("receipt.signature", signedPath, false, e.message); continue; }
      const canonicalBytes = small.get(path);
      if (!canonicalBytes) { add("receipt.signature", subject, false, "the receipt member could not be read"); continue; }
      const signature = unhex(part.signature);
      if (!signature) { add("receipt.signature", signedPath, false, "the signature is not hex"); continue; }
      const fail = (check, detail) => add(check, check.startsWith("signature_strokes") ? strokesPath : path, false, detail);
      let r;
      try { r = parseCanonical(canonicalBytes); } catch (e) { fail("receipt.canonical", e.message); continue; }
      if ((await sha256hex(canonicalBytes)) !== part.message.receipt_sha256) { fail("receipt.hash", "the receipt's bytes do not match its SHA-256"); continue; }
      if (r.v !== 1 || r.kind !== "onsite.receipt") { fail("receipt.version", `unknown receipt kind ${r.kind} v${r.v}`); continue; }
      if (r.order !== m.order || r.revision !== n) { fail("receipt.identity", "the receipt names another order or revision"); continue; }
      const bound = r.outcome && r.outcome.decision === "signed" ? r.outcome.strokes_sha256 : null;
      const strokesSha = part.message.strokes_sha256 ?? null;
      if (bound !== strokesSha) { fail("signature_strokes.binding", "the receipt binds other strokes than the ones recorded"); continue; }
      const strokes = small.get(strokesPath);
      if (strokes && strokesSha) {
        if ((await sha256hex(strokes)) !== strokesSha) { fail("signature_strokes.hash", "the signature strokes do not match their SHA-256"); continue; }
        try { decodeStrokes(strokes); } catch (e) { fail("signature_strokes.decode", e.message); continue; }
      } else if (strokes || strokesSha) { fail("signature_strokes.binding", "strokes and their hash must both be present or both absent"); continue; }
      const message = { v: 1, kind: "onsite.receipt.signature", order: r.order, revision: r.revision, receipt_sha256: part.message.receipt_sha256, strokes_sha256: strokesSha, journal_head: r.journal_head };
      if (canonical(message) !== canonical(part.message)) { fail("receipt.message", "the signed message does not bind this receipt, strokes and journal head"); continue; }
      if (!(await es256(publicKey, te.encode(canonical(part.message)), signature))) { fail("receipt.signature", "the device signature over the receipt does not verify"); continue; }
      add("receipt.signature", subject, true, "canonical (RFC 8785), hashes bound, device signature valid");
      const b = bodies.get(part.journal_seq);
      const p = b && b.kind === "receipt_signed" ? b.payload : null;
      const same = p && p.revision === n && p.receipt_sha256 === part.message.receipt_sha256 && p.signature === part.signature
        && (p.strokes_sha256 ?? null) === strokesSha && canonical(p.journal_head) === canonical(r.journal_head) && part.journal_seq > r.journal_head.seq;
      if (!p) add("receipt.journal_binding", subject, false, `no receipt_signed journal entry #${part.journal_seq} in the order's journal`);
      else if (same) add("receipt.journal_binding", subject, true, `journal entry #${part.journal_seq} records this signing after head #${r.journal_head.seq}`);
      else add("receipt.journal_binding", subject, false, `journal entry #${part.journal_seq} does not record this receipt's hash, signature and head`);
      const svgPath = `signature/r${n}.svg`;
      if (strokes) {
        const svg = small.get(svgPath);
        if (!svg) add("signature_svg.rendering", svgPath, false, "missing");
        else if (renderSvg(decodeStrokes(strokes)) === new TextDecoder().decode(svg)) add("signature_svg.rendering", svgPath, true, "re-rendered from the strokes, identical");
        else add("signature_svg.rendering", svgPath, false, "the SVG is not the rendering of the signed strokes");
      }
      receipts.set(n, { r, part });
    }
    const revs = [...receipts.keys()].sort((a, b) => a - b);
    if (!revs.length) { add("receipt.present", "receipt/", false, "the bundle holds no verifiable receipt"); return; }
    const latest = revs[revs.length - 1];
    for (const n of revs) {
      const want = n === 1 ? null : receipts.get(n - 1)?.part.message.receipt_sha256 ?? null;
      const got = receipts.get(n).r.supersedes ? receipts.get(n).r.supersedes.sha256 : null;
      if (n > 1 && want === null) add("receipt.revisions", `receipt r${n}`, false, `revision ${n - 1} is missing`);
      else if (got !== want) add("receipt.revisions", `receipt r${n}`, false, "does not name the revision it supersedes");
    }
    if (revs.join() !== Array.from({ length: latest }, (_, i) => i + 1).join()) add("receipt.revisions", "receipt/", false, "revisions are not 1..N");
    else add("receipt.revisions", "receipt/", true, `${latest} revision(s), each superseding the previous`);
    const { r, part } = receipts.get(latest);

    // ---- photos ----
    for (const p of r.photos || []) {
      const subject = `photo ${String(p.sha256).slice(0, 16)}`;
      if (!isSha(p.sha256)) { add("photo.binding", subject, false, "not a SHA-256"); continue; }
      if (p.journal_seq === null || p.journal_seq === undefined) { add("photo.binding", subject, true, "recorded by another device: bound by the receipt's hash only"); continue; }
      const b = bodies.get(p.journal_seq);
      const payload = b && b.kind === "photo" ? b.payload : null;
      if (!payload) { add("photo.binding", subject, false, `no photo journal entry #${p.journal_seq}`); continue; }
      if (payload.sha256 !== p.sha256 || (payload.step ?? null) !== (p.step ?? null)) { add("photo.binding", subject, false, `journal entry #${p.journal_seq} records another photo or step`); continue; }
      const member = m.thumbnails_only ? (payload.thumb_sha256 ? `thumbs/${payload.thumb_sha256}.jpg` : null) : `photos/${p.sha256}.jpg`;
      if (member && listed.has(member)) add("photo.binding", member, true, `step ${p.step || "-"} - journal entry #${p.journal_seq}`);
      else if (member) add("photo.present", member, false, "the photo the receipt names is not in the bundle");
      else add("photo.present", subject, false, "no thumbnail was recorded for this photo");
    }

    // ---- trusted time: each entry anchored to a ticket of the time authority ----
    const authority = opts.timeAuthority || unhex(m.device.time_authority || "");
    out.intervals = new Map();
    if (authority && authority.length) {
      const checked = new Map();
      for (const b of bodies.values()) {
        const iv = await trustedInterval(b, tickets, authority, checked);
        if (iv) out.intervals.set(b.seq, iv);
      }
      const signedIv = out.intervals.get(part.journal_seq);
      if (signedIv) add("time.ticket", `journal #${part.journal_seq}`, true, `signed between ${iso(signedIv[0])} and ${iso(signedIv[1])}`);
    }

    // ---- summary (who, what, where, when) ----
    const arrival = [...bodies.values()].find((b) => b.kind === "transition" && b.payload && b.payload.to === "on_site");
    const fix = arrival && arrival.fix ? arrival.fix : null;
    const site = r.site || {};
    out.summary = {
      order: r.order, revision: latest, decision: r.outcome.decision, signer_name: r.outcome.signer_name, refusal_reason: r.outcome.reason || null,
      customer: `${r.customer.company} (${r.customer.contact}, ${r.customer.phone})`, site: site.address,
      equipment: `${r.equipment.category} ${r.equipment.brand} ${r.equipment.model} S/N ${r.equipment.serial}`,
      fault: r.fault.description, diagnosis: r.diagnosis.text, work_done: r.work_done, engineer: `${r.engineer.name} (${r.engineer.id})`,
      provider: r.provider.name, device_id: m.device.id, device_key_sha256: keyFp, arrived_at: r.times.arrived_at, finished_at: r.times.finished_at,
      signed_at: iso(part.signed_at_ms), arrival_fix: fix, site_lat: site.lat ?? null, site_lon: site.lon ?? null,
      arrival_distance_m: fix && site.lat != null ? distance(fix.lat, fix.lon, site.lat, site.lon) : null,
      logged: logged.get(part.journal_seq) || null, photos: (r.photos || []).length, journal_entries: entries.length,
      charges_payable: `${r.charges.currency} ${Math.floor(r.charges.payable_cents / 100)}.${String(r.charges.payable_cents % 100).padStart(2, "0")}`,
      receipt: r, strokes_svg: small.get(`signature/r${latest}.svg`) || null, tickets: tickets.length,
    };
  }

  // `receipt/rN.signed.json` has exactly these fields (the Rust reader denies others).
  function exact(o, required, optional = []) {
    if (!o || typeof o !== "object" || Array.isArray(o)) throw new Error("not an object");
    for (const k of required) if (!(k in o)) throw new Error(`missing field \`${k}\``);
    for (const k of Object.keys(o)) if (!required.includes(k) && !optional.includes(k)) throw new Error(`unknown field \`${k}\``);
  }
  function signedPartShape(p) {
    exact(p, ["message", "signature", "journal_seq", "signed_at_ms"]);
    exact(p.message, ["v", "kind", "order", "revision", "receipt_sha256", "journal_head"], ["strokes_sha256"]);
    exact(p.message.journal_head, ["seq", "hash"]);
    const int = (x) => Number.isInteger(x) && x >= 0;
    const ok = typeof p.signature === "string" && int(p.journal_seq) && Number.isInteger(p.signed_at_ms) && int(p.message.v) && typeof p.message.kind === "string"
      && typeof p.message.order === "string" && int(p.message.revision) && typeof p.message.receipt_sha256 === "string"
      && (p.message.strokes_sha256 === undefined || p.message.strokes_sha256 === null || typeof p.message.strokes_sha256 === "string")
      && int(p.message.journal_head.seq) && typeof p.message.journal_head.hash === "string";
    if (!ok) throw new Error("a field has the wrong type");
  }

  function proofShape(p) {
    exact(p, ["seq", "index", "path", "checkpoint"], ["note"]);
    exact(p.checkpoint, ["origin", "size", "root", "at_ms", "log_key", "signature"]);
    const c = p.checkpoint, int = (x) => Number.isInteger(x) && x >= 0;
    const ok = int(p.seq) && int(p.index) && Array.isArray(p.path) && p.path.every((h) => typeof h === "string") && (p.note === undefined || p.note === null || typeof p.note === "string")
      && typeof c.origin === "string" && int(c.size) && typeof c.root === "string" && Number.isInteger(c.at_ms) && typeof c.log_key === "string" && typeof c.signature === "string";
    if (!ok) throw new Error("a proof field has the wrong type");
  }

  /** Every entry's body that parses, walked or not (bindings are looked up in them). */
  function allBodies(entries) {
    const out = new Map();
    for (const e of entries) {
      try {
        const b = JSON.parse(td.decode(unhex(e.body)));
        if (b && typeof b === "object" && typeof b.kind === "string" && Number.isInteger(b.seq)) out.set(e.seq, b);
      } catch (_) { /* unreadable: not a binding */ }
    }
    return out;
  }

  /** The real-time interval of an entry anchored to a valid ticket (core evidence::time). */
  async function trustedInterval(body, ticketEntries, authority, checked) {
    const a = body.ticket;
    if (!a) return null;
    if (!checked.has(a.seq)) checked.set(a.seq, await ticketOf(ticketEntries.find((e) => e.seq === a.seq), authority, body.device));
    const t = checked.get(a.seq);
    if (!t) return null;
    const drift = Math.floor((a.elapsed_ms * 100) / 1e6) + 1;
    return [t.server_time_ms + a.elapsed_ms - drift, t.server_time_ms + t.round_trip_ms + a.elapsed_ms + drift];
  }
  async function ticketOf(entry, authority, device) {
    if (!entry) return null;
    try {
      const b = JSON.parse(td.decode(unhex(entry.body)));
      const t = b.kind === "time_ticket" && b.payload && b.payload.ticket;
      if (!t || t.body.device !== device || t.authority !== hex(authority)) return null;
      // The authority signed the body's JSON in its field order: v, server_time_ms, device, nonce.
      const signed = JSON.stringify({ v: t.body.v, server_time_ms: t.body.server_time_ms, device: t.body.device, nonce: t.body.nonce });
      if (!(await es256(authority, te.encode(signed), unhex(t.signature)))) return null;
      return { server_time_ms: t.body.server_time_ms, round_trip_ms: b.payload.round_trip_ms };
    } catch (_) {
      return null;
    }
  }

  function distance(lat1, lon1, lat2, lon2) {
    const R = 6371000, rad = Math.PI / 180;
    const a = Math.sin(((lat2 - lat1) * rad) / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(((lon2 - lon1) * rad) / 2) ** 2;
    return 2 * R * Math.asin(Math.min(1, Math.sqrt(a)));
  }

  V.verifyBundle = verifyBundle;
  V.distance = distance;
})();
