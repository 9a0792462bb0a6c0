// The console end to end (issue 18): a real onsite-server, a real `onsite` device, Debian's
// Chromium. The tests run in order and share one server: the dispatcher creates and assigns,
// the device enrols from the QR code and works the order while the board watches, an expert
// answers from the inbox, hostile text stays text, another provider sees nothing, axe finds
// no serious violation, the board's screenshot matches the kept one.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, onsite, provider, launch, signedIn, decodeQr, axe, blockDiff, SAMPLES, ROOT, ONSITE } from "./harness.mjs";
import { members, zip } from "./zipkit.mjs";
import { spawnSync } from "node:child_process";

let srv, browser, tokA, tokB;
const device = mkdtempSync(join(tmpdir(), "onsite-console-device-"));
const state = {};

/** The sample orders, for `provider` and `engineer`, ids with `prefix`, edited by `edit`. */
function samples(providerId, engineer, prefix, edit = () => {}) {
  const orders = JSON.parse(readFileSync(SAMPLES, "utf8"));
  for (const o of orders) {
    o.id = o.id.replace("WO-20261123", prefix);
    o.provider.id = providerId;
    o.engineer.id = engineer;
    // Reported now, so the SLA clocks run (and an hour or more is left on them).
    o.fault.reported_at = new Date().toISOString();
    edit(o);
  }
  return JSON.stringify(orders);
}

/** Compares with the kept reference (ONSITE_UPDATE_SCREENSHOTS=1 rewrites it; a missing one is written and fails). */
function compareScreenshot(name, png) {
  const dir = join(ROOT, "tests", "screenshots");
  const ref = join(dir, name);
  if (process.env.ONSITE_UPDATE_SCREENSHOTS === "1" || !existsSync(ref)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(ref, png);
    if (process.env.ONSITE_UPDATE_SCREENSHOTS !== "1") assert.fail(`no reference screenshot: wrote ${ref}; look at it, then commit it`);
  }
  const { diff, sizeMatches } = blockDiff(readFileSync(ref), png);
  figure(`screenshot_diff.${name}`, diff.toFixed(2), "mean-block");
  assert.ok(sizeMatches, `${name}: same size as the reference`);
  assert.ok(diff < 6, `${name} looks like the reference (block diff ${diff.toFixed(2)})`);
}

function figure(name, value, unit) {
  console.log(`figure console.${name} ${value} ${unit}`);
}

before(async () => {
  srv = await startServer();
  tokA = provider(srv.url, "prov-a", "Provider A / 甲服务站");
  tokB = provider(srv.url, "prov-b", "Provider B / 乙服务站");
  browser = await launch();
});

after(async () => {
  await browser?.close();
  srv?.stop();
});

test("1. the dispatcher signs in, creates an order, assigns it and shows an enrolment QR code", async () => {
  const ctx = await browser.newContext();
  const bad = await ctx.newPage();
  await bad.goto(srv.url + "/console/");
  assert.match(bad.url(), /\/console\/signin$/, "no session: the board sends to the sign-in page");
  await bad.fill("#token", "dsp_not-a-token");
  await bad.click("button[type=submit]");
  assert.ok(await bad.locator("[role=alert]").isVisible(), "a wrong token says so");
  await ctx.close();

  const page = await signedIn(browser, srv.url, tokA);
  const cookie = (await page.context().cookies()).find((c) => c.name === "onsite_session");
  assert.ok(cookie.httpOnly && cookie.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");

  await page.goto(srv.url + "/console/orders/new");
  const form = page.locator("form.grid");
  for (const [name, value] of Object.entries({
    id: "WO-FORM-0001", company: "表单客户 Form Customer", contact: "赵先生", phone: "010 1234 5678", address: "北京市东城区 1 号", category: "laptop", brand: "ThinkPad",
    model: "X1", serial: "SN-FORM-1", fault: "不开机 / no power", engineer_id: "eng-9", engineer_name: "王工",
  })) {
    await form.locator(`[name=${name}]`).fill(value);
  }
  await Promise.all([page.waitForURL(/WO-FORM-0001$/), form.locator("button[type=submit]").click()]);
  assert.match(await page.locator("h1").innerText(), /WO-FORM-0001/);

  const assign = page.locator("form[action$='/assign']");
  await assign.locator("[name=engineer_id]").fill("eng-1");
  await assign.locator("[name=name]").fill("李明");
  await Promise.all([page.waitForURL(/WO-FORM-0001$/), assign.locator("button").click()]);
  assert.match(await page.locator("dl.facts").innerText(), /eng-1 李明/, "the order is assigned to eng-1");

  // The device's orders: the sample orders, uploaded as dispatcher JSON.
  await page.goto(srv.url + "/console/orders/new");
  await page.fill("#json", samples("prov-a", "eng-1", "WO-A"));
  await Promise.all([page.waitForURL(/\/console\/$/), page.click("button[value=json]")]);
  assert.equal(await page.locator("#board-rows tr").count(), 4);

  await page.goto(srv.url + "/console/devices");
  await page.fill("form[action='/console/codes'] [name=engineer_id]", "eng-1");
  await page.click("form[action='/console/codes'] button");
  const shown = (await page.locator("#enrol-code").innerText()).trim();
  const png = await page.locator("#enrol-qr svg").screenshot();
  const scanned = decodeQr(png);
  assert.ok(scanned, "the QR code decodes");
  const uri = new URL(scanned);
  assert.equal(uri.protocol, "onsite:");
  assert.equal(uri.searchParams.get("code"), shown, "the QR code carries the code shown");
  assert.equal(uri.searchParams.get("server"), srv.url, "and this server's address");
  state.code = shown;
  state.dispatcher = page;
});

test("2. a device enrols from the QR code, works the order offline, syncs: the board follows live", async () => {
  const page = state.dispatcher;
  onsite(["sync", "enrol", "--server", srv.url, state.code], device);
  onsite(["sync", "now"], device);
  const id = "WO-A-0001";
  await page.goto(srv.url + "/console/");
  await page.waitForSelector("#live:not([hidden])");
  await page.evaluate(() => { window.__sameDocument = true; });
  const row = page.locator(`tr[data-order="${id}"]`);
  assert.equal(await row.getAttribute("data-status"), "assigned");
  const openOf = async () => Number(await page.locator('#engineers tr[data-engineer="eng-1"] td:nth-child(2)').innerText());
  const openBefore = await openOf();
  assert.ok(openBefore >= 4, `the engineers panel counts eng-1's open orders (${openBefore})`);
  assert.match(await page.locator('#engineers tr[data-engineer="eng-1"] td:nth-child(5)').innerText(), /^\d{4}-/, "and shows its last sync");

  // Offline: the whole visit, then one sync.
  const window = ["--window-start", new Date(Date.now() + 3600e3).toISOString(), "--window-end", new Date(Date.now() + 7200e3).toISOString()];
  for (const step of [["accept"], ["contact_customer", ...window], ["depart"], ["arrive", "--lat", "39.9089", "--lon", "116.4604"], ["start_work"]]) {
    onsite(["orders", "transition", id, ...step], device);
  }
  onsite(["checklist", "start", id], device);
  assert.match(onsite(["checklist", "walk-demo", id], device), /photo/);
  onsite(["orders", "transition", id, "request_signature"], device);
  onsite(["receipt", "sign", "--order", id, "--diagnosis", "DC-in jack loose", "--work-done", "resoldered", "--signer", "王女士", "--sample-signature", "--charge", "warranty=0:warranty"], device);
  onsite(["orders", "transition", id, "complete"], device);
  onsite(["sync", "now"], device);
  const synced = Date.now();
  await page.waitForFunction((id) => document.querySelector(`tr[data-order="${id}"]`)?.dataset.status === "completed", id, { timeout: 10000 });
  figure("live_update_ms", Date.now() - synced, "ms");
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "the board changed without a reload");
  await page.waitForFunction((n) => Number(document.querySelector('#engineers tr[data-engineer="eng-1"] td:nth-child(2)')?.innerText) === n, openBefore - 1);
  assert.ok(await row.locator(".sla.stopped").isVisible(), "the SLA clock stopped");

  await page.goto(srv.url + `/console/orders/${id}`);
  const photos = page.locator("ul.photos img");
  assert.ok((await photos.count()) >= 1, "the photos are shown");
  // The thumbnails load lazily: bring each into view, then every one must have decoded.
  for (const img of await photos.all()) await img.scrollIntoViewIfNeeded();
  await page.waitForFunction(() => [...document.querySelectorAll("ul.photos img")].every((i) => i.complete && i.naturalWidth > 0));
  const receipts = await page.locator("#h-receipts + ul").innerText();
  assert.match(receipts, /signed · 王女士/, "the signed receipt is listed, verified again on the server");
  assert.match(receipts, /✓/);
  assert.match(await page.locator("ul.photos").innerText(), /EXIF/, "each photo shows its EXIF time beside its ingest time");
  const copyHref = await page.locator("#h-receipts + ul a").first().getAttribute("href");
  const copy = await page.request.get(srv.url + copyHref);
  assert.equal(copy.status(), 200);
  assert.match(copy.headers()["content-security-policy"], /sandbox/, "the customer copy runs nothing");
  const copyPage = await page.context().newPage();
  await copyPage.goto(srv.url + copyHref);
  const copyText = await copyPage.locator("body").innerText();
  assert.match(copyText, /王女士/, "the customer copy names the signer");
  assert.match(copyText, /DC-in jack loose/, "and the diagnosis");
  await copyPage.close();
  const timeline = await page.locator("table.timeline").innerText();
  assert.match(timeline, /Arrive/);
  assert.match(timeline, /m 距现场/, "the arrival fix's distance from the site");
  await page.goto(srv.url + "/console/devices");
  assert.match(await page.locator("td.last-sync").first().innerText(), /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$/, "the device's last sync is listed");
  await page.goto(srv.url + `/console/orders/${id}`);
  // ONSITE_SHOTS=DIR keeps a full-page picture of the order page for a person to look at.
  if (process.env.ONSITE_SHOTS) await page.screenshot({ path: join(process.env.ONSITE_SHOTS, "order-page.png"), fullPage: true });
  const src = await photos.first().getAttribute("src");
  const resp = await page.request.get(srv.url + src);
  assert.equal(resp.headers()["content-type"], "image/jpeg");
  assert.equal(resp.headers()["x-content-type-options"], "nosniff");
  state.photo = src;
});

test("3. the bundle dropped into the verifier page: VALID with every check; a flipped copy INVALID naming the member; Rust agrees", async () => {
  const page = state.dispatcher;
  const good = join(device, "bundle.zip");
  onsite(["bundle", "export", "--order", "WO-A-0001", good], device);
  const flipped = join(device, "flipped.zip");
  const m = await members(new Uint8Array(readFileSync(good)));
  const ri = m.findIndex(([n]) => n === "receipt/r1.json");
  m[ri][1] = Uint8Array.from(m[ri][1]);
  m[ri][1][40] ^= 0x20;
  writeFileSync(flipped, zip(m));
  const rust = (f) => JSON.parse(spawnSync(ONSITE, ["verify", "--json", f], { encoding: "utf8" }).stdout);

  await page.goto(srv.url + "/console/verify");
  assert.match(await page.locator("#log-key").inputValue(), /^04[0-9a-f]{128}$/, "the provider's log key comes pinned");
  await page.setInputFiles("#bundle-file", good);
  const verdict = page.locator("#verdict");
  await verdict.waitFor();
  assert.equal(await verdict.getAttribute("data-verdict"), "VALID");
  figure("verify_ms_device_bundle", await verdict.getAttribute("data-ms"), "ms");
  const rows = await page.locator("#checks tbody tr").count();
  assert.ok(rows >= 15, `every check is listed (${rows})`);
  assert.equal(await page.locator("#checks tr.fail").count(), 0);
  assert.ok(await page.locator("#arrival-plot svg").isVisible(), "the arrival fix is drawn against the site");
  const stepsText = await page.locator("table.steps").innerText();
  assert.match(stepsText, /\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} – \d{2}:\d{2}:\d{2}/, `steps carry their trusted-time interval: ${stepsText.slice(0, 600)}`);
  assert.match(await page.locator("#authority-key").inputValue(), /^04[0-9a-f]{128}$/, "the time authority's key comes pinned");
  const risks = await page.locator("ul.consents blockquote.risk").allInnerTexts();
  assert.ok(risks.length >= 2 && risks.some((t) => t.includes("机箱")), `each consent shows the exact risk text the customer agreed to: ${risks}`);
  await page.waitForFunction(() => [...document.querySelectorAll("ul.photos img, img.signature")].every((i) => i.complete && i.naturalWidth > 0));
  assert.equal(rust(good).ok, true, "Rust agrees: valid");
  assert.deepEqual((await axe(page)).map((x) => x.id), [], "axe on the verifier's report");

  await page.setInputFiles("#bundle-file", flipped);
  await page.waitForFunction(() => document.querySelector("#verdict")?.dataset.verdict === "INVALID");
  const failedMembers = await page.locator("#checks tr.fail td:nth-child(3)").allInnerTexts();
  assert.ok(failedMembers.includes("receipt/r1.json"), `the failing member is named: ${failedMembers}`);
  const r = rust(flipped);
  assert.equal(r.ok, false);
  assert.deepEqual([...new Set(failedMembers)].sort(), [...new Set(r.checks.filter((c) => !c.passed).map((c) => c.subject))].sort(), "the same failing members as Rust");

  // Under a witness policy the device's bundle fails: its proofs carry no cosignature (the
  // witness cosigns after the upload). Rust says the same; a malformed key is refused.
  const { generateKeyPairSync, createHash } = await import("node:crypto");
  const raw = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const keyed = Buffer.concat([Buffer.from([4]), raw]);
  const vkey = `w.example/1+${createHash("sha256").update(Buffer.concat([Buffer.from("w.example/1\n"), keyed])).digest().subarray(0, 4).toString("hex")}+${keyed.toString("base64")}`;
  await page.locator("details.keys summary").click();
  await page.fill("#witness-keys", "not+a+key");
  await page.setInputFiles("#bundle-file", []);
  await page.setInputFiles("#bundle-file", good);
  await page.waitForFunction(() => document.querySelector("#verdict")?.dataset.verdict === "KEY");
  await page.fill("#witness-keys", vkey);
  await page.setInputFiles("#bundle-file", []);
  await page.setInputFiles("#bundle-file", good);
  await page.waitForFunction(() => document.querySelector("#verdict")?.dataset.verdict === "INVALID");
  assert.match((await page.locator("#checks tr.fail").allInnerTexts()).join("\n"), /log\.witnessed/);
  assert.equal(JSON.parse(spawnSync(ONSITE, ["verify", "--json", "--witness", vkey, good], { encoding: "utf8" }).stdout).ok, false, "Rust agrees");
  await page.fill("#witness-keys", "");

  // The engineer's service record (数字化履历): verified on the same page.
  const record = join(device, "record.json");
  onsite(["profile", "export", record], device);
  await page.setInputFiles("#bundle-file", record);
  await page.waitForFunction(() => document.querySelector("#verdict")?.dataset.kind === "record");
  assert.equal(await verdict.getAttribute("data-verdict"), "VALID");
  assert.match(await page.locator("dl.facts").innerText(), /eng-1/);
  assert.equal(rust(record).ok, true);
  const tampered = join(device, "record-tampered.json");
  writeFileSync(tampered, readFileSync(record, "utf8").replace('"first_time_fix":true', '"first_time_fix":false'));
  await page.setInputFiles("#bundle-file", tampered);
  await page.waitForFunction(() => document.querySelector("#verdict")?.dataset.verdict === "INVALID");
  assert.equal(rust(tampered).ok, false, "Rust agrees: the claim was changed");

  // The offline copy: saved to disk, opened from file://, no server involved.
  const offline = join(device, "onsite-verify.html");
  const resp = await page.request.get(srv.url + "/console/verify/offline.html");
  assert.match(resp.headers()["content-disposition"], /attachment/);
  writeFileSync(offline, await resp.body());
  const ctx = await browser.newContext({ offline: true });
  const off = await ctx.newPage();
  await off.goto("file://" + offline);
  await off.setInputFiles("#bundle-file", good);
  await off.waitForSelector("#verdict");
  assert.equal(await off.locator("#verdict").getAttribute("data-verdict"), "VALID", "the saved page verifies offline");
  await ctx.close();

  // The kept v1 bundle, for a screenshot whose content never changes.
  const shot = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  await shot.goto(srv.url + "/console/lang?to=en");
  await shot.goto(srv.url + "/console/verify");
  await shot.setInputFiles("#bundle-file", join(ROOT, "tests/fixtures/v1/bundle-WO-20261123-0001.zip"));
  await shot.waitForSelector("#verdict");
  await shot.evaluate(() => { document.querySelector("#verdict").lastChild.textContent = ""; });
  compareScreenshot("console-verifier.png", await shot.screenshot());
  await shot.close();
});

test("4. an expert answers a help request from the inbox and the device receives it", async () => {
  const page = state.dispatcher;
  await page.goto(srv.url + "/console/experts");
  const f = page.locator("form[action='/console/experts']");
  await f.locator("[name=id]").fill("exp-1");
  await f.locator("[name=name]").fill("张专家");
  await f.locator("[name=categories]").fill("desktop");
  await f.locator("[name=fee_cents]").fill("500");
  await f.locator("button").click();
  const token = (await page.locator("#expert-token").innerText()).trim();
  assert.match(token, /^exp_/);

  onsite(["expert", "ask", "WO-A-0002", "风扇异响怎么办? / fan noise?", "--fault"], device);
  onsite(["sync", "now"], device);

  const expert = await signedIn(browser, srv.url, token);
  assert.match(expert.url(), /\/console\/help$/, "an expert lands in the inbox");
  await expert.locator("tbody tr a").first().click();
  assert.match(await expert.locator("#question").innerText(), /fan noise/);
  const requestUrl = expert.url();
  // A reference photo must be an image: a text file is refused, and nothing is answered.
  const notImage = join(device, "notes.txt");
  writeFileSync(notImage, "<script>alert(1)</script>");
  await expert.fill("#answer-text", "x");
  await expert.setInputFiles("#answer-photos", notImage);
  await expert.click("button[type=submit]:text-is('发送回答')");
  assert.match(await expert.locator("[role=alert]").innerText(), /^400/);
  await expert.goto(requestUrl);
  assert.equal(await expert.locator("p.ok").count(), 0);
  const photo = join(device, "reference.jpg");
  writeFileSync(photo, await (await page.request.get(srv.url + state.photo)).body());
  await expert.fill("#answer-text", "清理风扇并更换轴承 / clean the fan, replace the bearing");
  await expert.fill("#answer-steps", "拆下风扇\n更换轴承");
  await expert.setInputFiles("#answer-photos", photo);
  await expert.click("button[type=submit]:text-is('发送回答')");
  await expert.waitForSelector("p.ok");
  const photoSha = state.photo.split("/").pop();
  // The expert is not a dispatcher: no board, no order pages.
  await expert.goto(srv.url + "/console/");
  assert.match(expert.url(), /\/console\/help$/);
  const forbidden = await expert.request.get(srv.url + "/console/orders/WO-A-0002");
  assert.equal(forbidden.status(), 403);

  onsite(["sync", "now"], device);
  const threads = onsite(["expert", "threads", "WO-A-0002"], device);
  assert.match(threads, /replace the bearing/, "the device received the answer");
  assert.match(threads, /- 更换轴承/, "with its suggested steps");
  assert.ok(threads.includes(`photo ${photoSha}`) && !threads.includes("not downloaded"), `and its reference photo, downloaded: ${threads}`);
  await expert.context().close();
});

test("5. hostile text renders as text, and another provider sees none of it", async () => {
  const page = state.dispatcher;
  const x = (n) => `<img src=x onerror="window.__xss=${n}"><script>window.__xss=${n}</script>`;
  await page.goto(srv.url + "/console/orders/new");
  await page.fill("#json", samples("prov-a", "eng-1", "WO-X", (o) => {
    o.customer.company = x(1);
    o.customer.contact = `"><svg onload="window.__xss=2">`;
    o.fault.description = x(3);
    o.equipment.serial = `</td><script>window.__xss=4</script>`;
    o.engineer.name = x(5);
    o.site.address = `javascript:window.__xss=6`;
  }));
  await Promise.all([page.waitForURL(/\/console\/$/), page.click("button[value=json]")]);
  // A device writes notes and help questions.
  onsite(["sync", "now"], device);
  onsite(["orders", "note", "WO-X-0001", x(7)], device);
  // A checklist answer the engineer typed.
  const win = ["--window-start", new Date(Date.now() + 3600e3).toISOString(), "--window-end", new Date(Date.now() + 7200e3).toISOString()];
  for (const step of [["accept"], ["contact_customer", ...win], ["depart"], ["arrive"], ["start_work"]]) onsite(["orders", "transition", "WO-X-0001", ...step], device);
  onsite(["checklist", "start", "WO-X-0001"], device);
  onsite(["checklist", "walk-demo", "WO-X-0001"], device);
  onsite(["checklist", "answer", "WO-X-0001", "software_first", "--text", x(9)], device);
  onsite(["expert", "ask", "WO-X-0002", x(8)], device);
  onsite(["sync", "now"], device);

  const dialogs = [];
  page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
  for (const path of ["/console/", "/console/orders/WO-X-0001", "/console/orders/WO-X-0002", "/console/?q=%3Cscript%3E"]) {
    await page.goto(srv.url + path);
    await page.waitForLoadState("load");
    assert.equal(await page.evaluate(() => window.__xss), undefined, `nothing executed on ${path}`);
    assert.equal(await page.locator("main script, main img[src=x], main svg[onload]").count(), 0, `no markup injected on ${path}`);
  }
  await page.goto(srv.url + "/console/orders/WO-X-0001");
  const text = await page.locator("main").innerText();
  assert.ok(text.includes(`<img src=x onerror="window.__xss=1">`), "the customer's name shows as typed");
  assert.ok(text.includes(`window.__xss=7`), "the engineer's note shows as typed");
  assert.ok(text.includes(`window.__xss=9`), "the checklist answer shows as typed");
  assert.deepEqual(dialogs, []);

  // Provider B: an empty board, and A's order, photo and rows are not found.
  const b = await signedIn(browser, srv.url, tokB);
  assert.equal(await b.locator("#board-rows tr").count(), 0);
  assert.equal((await b.request.get(srv.url + "/console/orders/WO-A-0001")).status(), 404);
  assert.equal((await b.request.get(srv.url + state.photo)).status(), 404);
  assert.ok(!(await (await b.request.get(srv.url + "/console/board/rows")).text()).includes("WO-A"));
  await b.context().close();

  // A form without the session's CSRF token is refused, and so is one from another origin.
  const noCsrf = await page.request.post(srv.url + "/console/orders/WO-A-0003/priority", { form: { _csrf: "AAAA", priority: "low" } });
  assert.equal(noCsrf.status(), 403);
  const csrf = await page.locator("input[name=_csrf]").first().inputValue();
  const crossSite = await page.request.post(srv.url + "/console/orders/WO-A-0003/priority", { form: { _csrf: csrf, priority: "low" }, headers: { origin: "http://evil.example" } });
  assert.equal(crossSite.status(), 403);
  const csp = (await page.request.get(srv.url + "/console/")).headers()["content-security-policy"];
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
});

test("6. axe-core finds no serious or critical violation on the board, an order, devices, sign-in", async () => {
  const page = state.dispatcher;
  for (const path of ["/console/", "/console/orders/WO-A-0001", "/console/devices", "/console/orders/new", "/console/experts"]) {
    await page.goto(srv.url + path);
    const v = await axe(page);
    assert.deepEqual(v.map((x) => `${x.id}: ${x.nodes.map((n) => n.target.join(" ")).join(", ")}`), [], path);
  }
  const anon = await browser.newPage();
  await anon.goto(srv.url + "/console/signin");
  assert.deepEqual((await axe(anon)).map((x) => x.id), [], "sign-in");
  await anon.close();
});

test("7. the board's screenshot matches the kept reference (English, fixed content)", async () => {
  const tok = provider(srv.url, "prov-shot", "Screenshot");
  onsite(["dispatch", "--server", srv.url, "--token", tok, "orders", SAMPLES, "--provider", "prov-shot", "--engineer", "eng-7", "--id-prefix", "WO-SHOT"]);
  const page = await signedIn(browser, srv.url, tok, { viewport: { width: 1200, height: 560 } });
  await page.goto(srv.url + "/console/lang?to=en");
  await page.waitForSelector("#live:not([hidden])");
  compareScreenshot("console-board.png", await page.screenshot());
  await page.context().close();
});

test("figures: first paint of a board of 2,000 orders", async () => {
  const tok = provider(srv.url, "prov-perf", "Perf");
  const base = JSON.parse(readFileSync(SAMPLES, "utf8"))[0];
  const orders = Array.from({ length: 2000 }, (_, i) => ({ ...base, id: `WO-P-${String(i).padStart(5, "0")}`, provider: { id: "prov-perf", name: "Perf" }, fault: { ...base.fault, reported_at: new Date(Date.now() - i * 60e3).toISOString() } }));
  const r = await fetch(srv.url + "/v1/orders", { method: "POST", headers: { authorization: `Bearer ${tok}`, "content-type": "application/json" }, body: JSON.stringify(orders) });
  assert.equal(r.status, 201);
  const page = await signedIn(browser, srv.url, tok);
  await page.goto(srv.url + "/console/");
  const fcp = await page.evaluate(() => performance.getEntriesByName("first-contentful-paint")[0]?.startTime);
  assert.equal(await page.locator("#board-rows tr").count(), 2000);
  figure("board_first_paint_ms_2000", Math.round(fcp), "ms");
  await page.context().close();
});
