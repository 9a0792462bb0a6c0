// The verifier page: drop an arbitration bundle; verify.js and verify-bundle.js check it in
// this browser (nothing is uploaded) and this script shows who, what, where and when, the
// arrival fix drawn against the site, every journal step with its time anchor, the photos,
// the customer's signature, consents, the receipt, the log inclusion, and every check.
"use strict";
(function () {
  const root = document.getElementById("verifier");
  if (!root || !globalThis.OnsiteVerify) return;
  const en = root.dataset.lang === "en";
  const T = (zh, e) => (en ? e : zh);
  const el = (tag, attrs = {}, ...kids) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) n.setAttribute(k, v);
    for (const k of kids) if (k !== null && k !== undefined) n.append(k instanceof Node ? k : String(k));
    return n;
  };
  const local = (ms) => new Date(ms + 8 * 3600e3).toISOString().replace("T", " ").slice(0, 19) + " (UTC+8)";
  const unhex = globalThis.OnsiteVerify.internals.unhex;

  const input = el("input", { type: "file", id: "bundle-file", accept: ".zip,.json,application/zip,application/json" });
  const deviceKey = el("input", { id: "device-key", name: "device-key", size: "40", spellcheck: "false", autocomplete: "off" });
  const authorityKey = el("input", { id: "authority-key", name: "authority-key", size: "40", spellcheck: "false", autocomplete: "off", value: root.dataset.authority || "" });
  const witnessKeys = el("textarea", { id: "witness-keys", name: "witness-keys", rows: "2", spellcheck: "false" });
  const witnessQuorum = el("input", { id: "witness-quorum", name: "witness-quorum", type: "number", min: "0" });
  const logKey = el("input", { id: "log-key", name: "log-key", size: "40", spellcheck: "false", autocomplete: "off", value: root.dataset.logKey || "" });
  const drop = el("div", { class: "drop", id: "drop" }, el("p", {}, T("把仲裁包(.zip)或服务履历(.json)拖到这里,或选择文件。核验在本浏览器内完成,不上传任何内容。", "Drop an arbitration bundle (.zip) or a service record (.json) here, or choose the file. It is verified in this browser; nothing is uploaded.")),
    el("label", { for: "bundle-file" }, T("仲裁包或服务履历文件", "Bundle or service record file")), input);
  const keys = el("details", { class: "keys" }, el("summary", {}, T("固定的公钥(可选)", "Pinned keys (optional)")),
    el("label", { for: "device-key" }, T("设备公钥 (SEC1 hex)", "Device key (SEC1 hex)")), deviceKey,
    el("label", { for: "authority-key" }, T("时间权威公钥 (SEC1 hex)", "Time authority key (SEC1 hex)")), authorityKey,
    el("label", { for: "log-key" }, T("证据日志公钥 (SEC1 hex)", "Evidence log key (SEC1 hex)")), logKey,
    el("label", { for: "witness-keys" }, T("见证者公钥(每行一个,name+id+key)", "Witness keys (one per line, name+id+key)")), witnessKeys,
    el("label", { for: "witness-quorum" }, T("至少几位见证者(默认全部)", "Quorum (default: all of them)")), witnessQuorum);
  const result = el("div", { id: "result", "aria-live": "polite" });
  root.append(drop, keys, result);

  // The templates' consent texts, keyed by the hash a consent binds (zh + "\n" + en).
  const risks = new Map();
  const risksReady = (async () => {
    let texts = [];
    try { texts = JSON.parse(root.dataset.risks || "[]"); } catch (_) { texts = []; }
    for (const t of texts) risks.set(await globalThis.OnsiteVerify.internals.sha256hex(new TextEncoder().encode(`${t.zh}\n${t.en}`)), t);
  })();

  async function run(file) {
    await risksReady;
    result.replaceChildren(el("p", {}, T("核验中…", "Verifying…")));
    const bytes = new Uint8Array(await file.arrayBuffer());
    const opts = {};
    if (deviceKey.value.trim()) opts.deviceKey = unhex(deviceKey.value.trim());
    if (logKey.value.trim()) opts.logKey = unhex(logKey.value.trim());
    if (authorityKey.value.trim()) opts.timeAuthority = unhex(authorityKey.value.trim());
    const vkeys = witnessKeys.value.split("\n").map((l) => l.trim()).filter(Boolean);
    if (vkeys.length) {
      const witnesses = await Promise.all(vkeys.map((k) => globalThis.OnsiteVerify.internals.parseWitness(k)));
      const bad = vkeys.find((_, i) => !witnesses[i]);
      if (bad) {
        result.replaceChildren(el("p", { class: "error", role: "alert", id: "verdict", "data-verdict": "KEY" }, T("见证者公钥格式不对:", "Not a witness key: "), bad));
        return;
      }
      const quorum = witnessQuorum.value === "" ? witnesses.length : Number(witnessQuorum.value);
      opts.witnessPolicy = { witnesses, quorum };
    }
    const t0 = performance.now();
    const r = await globalThis.OnsiteVerify.verify(bytes, opts);
    const ms = performance.now() - t0;
    render(r, file.name, ms);
  }
  input.addEventListener("change", () => input.files.length && run(input.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files.length) run(e.dataTransfer.files[0]); });

  function plot(s) {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 240 240");
    svg.setAttribute("width", "240");
    svg.setAttribute("height", "240");
    svg.setAttribute("role", "img");
    const d = s.arrival_distance_m, f = s.arrival_fix;
    svg.setAttribute("aria-label", T(`到场定位距现场 ${Math.round(d)} 米`, `arrival fix ${Math.round(d)} m from the site`));
    const add = (tag, a) => { const n = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(a)) n.setAttribute(k, v); svg.append(n); return n; };
    const scale = 100 / Math.max(d, f.accuracy_m || 0, 50);
    const dx = (f.lon - s.site_lon) * 111320 * Math.cos((s.site_lat * Math.PI) / 180), dy = (f.lat - s.site_lat) * 110540;
    add("rect", { x: 0, y: 0, width: 240, height: 240, fill: "#f6f8fa", stroke: "#d0d7de" });
    add("circle", { cx: 120 + dx * scale, cy: 120 - dy * scale, r: Math.max(2, (f.accuracy_m || 0) * scale), fill: "rgba(11,92,173,.15)", stroke: "#0b5cad" });
    add("circle", { cx: 120 + dx * scale, cy: 120 - dy * scale, r: 4, fill: f.mock ? "#a40e26" : "#0b5cad" });
    add("rect", { x: 114, y: 114, width: 12, height: 12, fill: "#116329" });
    const label = add("text", { x: 8, y: 232, "font-size": "12", fill: "#1b1f24" });
    label.textContent = `${Math.round(d)} m ±${Math.round(f.accuracy_m || 0)} m${f.mock ? " MOCK" : ""}`;
    return svg;
  }

  function checksTable(r) {
    const checks = el("tbody");
    for (const c of r.checks) checks.append(el("tr", { class: c.passed ? "pass" : "fail" }, el("td", {}, c.passed ? T("通过", "pass") : T("失败", "FAIL")), el("td", {}, c.check), el("td", {}, el("code", {}, c.subject)), el("td", {}, c.detail)));
    return [el("h2", {}, T("全部检查", "Every check")), el("table", { class: "checks", id: "checks" }, el("thead", {}, el("tr", {}, ...[T("结果", "Result"), T("检查", "Check"), T("成员", "Member"), T("说明", "Detail")].map((h) => el("th", { scope: "col" }, h)))), checks)];
  }

  function verdictLine(r, name, ms) {
    return el("p", { class: r.ok ? "verdict ok" : "verdict bad", id: "verdict", "data-verdict": r.ok ? "VALID" : "INVALID", "data-kind": r.kind || "bundle", "data-ms": ms.toFixed(1) },
      r.ok ? T("有效 VALID", "VALID") : T("无效 INVALID", "INVALID"), " · ", name, ` · ${ms.toFixed(0)} ms`);
  }

  function renderRecord(r, name, ms) {
    const s = r.summary;
    const parts = [verdictLine(r, name, ms)];
    if (s) {
      const dl = el("dl", { class: "facts" });
      const row = (k, v) => dl.append(el("dt", {}, k), el("dd", {}, v));
      row(T("工程师", "Engineer"), s.engineer);
      row(T("服务商", "Provider"), s.provider);
      row(T("设备", "Device"), s.device_id);
      row(T("生成时间", "Generated"), s.generated_at);
      row(T("工单", "Orders"), `${s.orders.length} · ${T("日志收录", "in the log")} ${s.logged}`);
      row(T("认证级别", "Certified level"), s.level ? String(s.level) : T("无", "none"));
      row(T("一次修复率", "First-time fix"), `${(s.aggregates.first_time_fix_permille / 10).toFixed(1)} %`);
      parts.push(el("h2", {}, T("服务履历", "Service record")), dl);
      const rows = el("tbody");
      for (const o of s.orders) rows.append(el("tr", {}, el("td", {}, o.id), el("td", {}, `${o.category} ${o.brand}`), el("td", {}, (o.fault_kind || []).join(", ")), el("td", {}, o.work_minutes ?? "—"), el("td", {}, o.rating ?? "—"), el("td", {}, o.first_time_fix ? "✓" : "—"), el("td", {}, o.logged ? "✓" : "—")));
      parts.push(el("table", { class: "steps" }, el("thead", {}, el("tr", {}, ...[T("工单", "Order"), T("设备", "Equipment"), T("故障类型", "Fault kind"), T("工时(分)", "Work (min)"), T("评分", "Rating"), T("一次修复", "First-time fix"), T("日志", "Logged")].map((h) => el("th", { scope: "col" }, h)))), rows));
    }
    result.replaceChildren(...parts, ...checksTable(r));
  }

  function render(r, name, ms) {
    if (r.kind === "record") return renderRecord(r, name, ms);
    const s = r.summary;
    const verdict = verdictLine(r, name, ms);
    const parts = [verdict];
    if (s) {
      const dl = el("dl", { class: "facts" });
      const row = (k, v) => v !== null && v !== undefined && dl.append(el("dt", {}, k), el("dd", {}, v));
      row(T("工单", "Order"), `${s.order} · r${s.revision}`);
      row(T("服务商", "Provider"), s.provider);
      row(T("工程师", "Engineer"), s.engineer);
      row(T("设备", "Device"), `${s.device_id} · key SHA-256 ${s.device_key_sha256}`);
      row(T("客户", "Customer"), s.customer);
      row(T("现场", "Site"), s.site);
      row(T("设备型号", "Equipment"), s.equipment);
      row(T("故障", "Fault"), s.fault);
      row(T("诊断", "Diagnosis"), s.diagnosis);
      row(T("维修内容", "Work done"), s.work_done);
      row(T("到场", "Arrived"), s.arrived_at);
      row(T("完工", "Finished"), s.finished_at);
      row(T("签收", "Signed"), `${s.decision} · ${s.signer_name} · ${s.signed_at}${s.refusal_reason ? " · " + s.refusal_reason : ""}`);
      row(T("应付", "Payable"), s.charges_payable);
      row(T("日志收录", "In the log"), s.logged || T("无", "not proved"));
      parts.push(el("h2", {}, T("谁、何事、何地、何时", "Who, what, where, when")), dl);
      if (s.arrival_fix && s.site_lat !== null) parts.push(el("h2", {}, T("到场定位", "Arrival fix")), el("figure", { id: "arrival-plot" }, plot(s)));
      if (s.strokes_svg) {
        const url = URL.createObjectURL(new Blob([s.strokes_svg], { type: "image/svg+xml" }));
        parts.push(el("h2", {}, T("客户签名", "Customer's signature")), el("img", { src: url, alt: T("客户签名", "customer's signature"), class: "signature", width: "320" }));
      }
      const consents = (s.receipt.checklist && s.receipt.checklist.consents) || [];
      if (consents.length) {
        const list = el("ul", { class: "consents" });
        for (const c of consents) {
          const text = risks.get(c.risk_sha256);
          list.append(el("li", {},
            el("strong", {}, `${c.step} · ${c.accepted ? T("同意", "accepted") : T("拒绝", "refused")} · ${c.at}`),
            text ? el("blockquote", { class: "risk", lang: en ? "en" : "zh-CN" }, en ? text.en : text.zh) : el("p", { class: "muted" }, T("本页不认识该风险说明", "This page does not know that risk text")),
            el("small", {}, `${T("风险说明", "Risk text")} SHA-256 `, el("code", { class: "hash" }, c.risk_sha256), text ? T(" ✓ 与所示文字一致", " ✓ matches the text shown") : "")));
        }
        parts.push(el("h2", {}, T("客户同意", "Consents")), list);
      }
      const photos = el("ul", { class: "photos" });
      for (const p of s.receipt.photos || []) {
        const path = [...r.files.keys()].find((k) => k === `photos/${p.sha256}.jpg`) || [...r.files.keys()].find((k) => k.startsWith("thumbs/") && r.journal.some((b) => b.kind === "photo" && b.payload && b.payload.sha256 === p.sha256 && k === `thumbs/${b.payload.thumb_sha256}.jpg`));
        const img = path ? el("img", { src: URL.createObjectURL(new Blob([r.files.get(path)], { type: "image/jpeg" })), alt: p.step || "photo", width: "160" }) : T("(不在包内)", "(not in the bundle)");
        photos.append(el("li", {}, img, el("br"), el("small", {}, `${p.step || "-"} · ${p.ingested_at || ""}`), el("br"), el("code", { class: "hash" }, p.sha256)));
      }
      parts.push(el("h2", {}, T("照片", "Photos")), photos);
      const steps = el("tbody");
      for (const b of r.journal) {
        const what = b.payload && (b.payload.step || (b.payload.event && b.payload.event.kind) || b.payload.reason || b.payload.text) || "";
        const iv = r.intervals && r.intervals.get(b.seq);
        const anchor = iv ? `${local(iv[0]).slice(0, 19)} – ${local(iv[1]).slice(11)}` : b.ticket ? T(`时间票据 #${b.ticket.seq} 未核验`, `ticket #${b.ticket.seq} not verified`) : "—";
        steps.append(el("tr", {}, el("td", {}, b.seq), el("td", {}, b.kind), el("td", {}, String(what)), el("td", {}, local(b.at_ms)), el("td", {}, anchor), el("td", {}, b.fix ? `${b.fix.lat.toFixed(5)}, ${b.fix.lon.toFixed(5)}${b.fix.mock ? " MOCK" : ""}` : "")));
      }
      parts.push(el("h2", {}, T("操作日志", "Operation log")), el("table", { class: "steps" }, el("thead", {}, el("tr", {}, ...["#", T("类型", "Kind"), T("内容", "What"), T("设备时间", "Device time"), T("可信时间区间", "Trusted time interval"), "GPS"].map((h) => el("th", { scope: "col" }, h)))), steps));
    }
    parts.push(...checksTable(r));
    result.replaceChildren(...parts);
  }
})();
