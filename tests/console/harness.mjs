// What every console test needs: a real onsite-server on loopback (its own data directory),
// the `onsite` CLI as the engineer's device and the dispatcher's tools, and Debian's Chromium
// driven by playwright-core (headless, no sandbox, background networking off).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { PNG } from "pngjs";
import jsQR from "jsqr";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(here, "..", "..");
const BIN = process.env.ONSITE_BIN_DIR || join(ROOT, "target", "debug");
export const ONSITE = join(BIN, "onsite");
export const SERVER = join(BIN, "onsite-server");
export const SAMPLES = join(ROOT, "cli", "samples", "orders.json");
export const ADMIN = "console-admin";

/** Starts onsite-server on a free loopback port; resolves to { url, stop }. */
export async function startServer() {
  const data = mkdtempSync(join(tmpdir(), "onsite-console-"));
  const child = spawn(SERVER, ["--data", join(data, "server"), "--listen", "127.0.0.1:0", "--admin-token", ADMIN, "--log", "warn"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (b) => {
      out += b;
      const m = out.match(/http:\/\/[0-9.:]+/);
      if (m) resolve(m[0]);
    });
    child.on("exit", (code) => reject(new Error(`onsite-server exited with ${code}`)));
    setTimeout(() => reject(new Error("onsite-server did not start in 20 s")), 20000);
  });
  return { url, data, stop: () => child.kill("SIGTERM") };
}

/** Runs the onsite CLI; returns its stdout (throws with stderr on failure). */
export function onsite(args, dataDir) {
  const env = { ...process.env };
  if (dataDir) env.ONSITE_DATA = dataDir;
  return execFileSync(ONSITE, args, { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** A provider on the server; returns its dispatcher token. */
export function provider(url, id, name) {
  return onsite(["dispatch", "--server", url, "provider", "--admin-token", ADMIN, "--id", id, "--name", name]);
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}

/** A page signed in to the console with `token`. */
export async function signedIn(browser, url, token, opts = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "zh-CN", ...opts });
  const page = await context.newPage();
  await page.goto(url + "/console/signin");
  await page.fill("#token", token);
  await Promise.all([page.waitForURL(/\/console\/(help)?$/), page.click("button[type=submit]")]);
  return page;
}

/** Decodes the QR code in a PNG screenshot. */
export function decodeQr(png) {
  const img = PNG.sync.read(png);
  const found = jsQR(new Uint8ClampedArray(img.data), img.width, img.height);
  return found ? found.data : null;
}

/** Runs axe-core in the page; returns the violations of impact serious or critical. */
export async function axe(page) {
  const source = readFileSync(join(here, "node_modules", "axe-core", "axe.min.js"), "utf8");
  // Evaluated over the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(source);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/** Mean absolute difference (0..255) of two PNGs on an 8x8 block grid, as customer_copy.rs does. */
export function blockDiff(a, b) {
  const A = PNG.sync.read(a);
  const B = PNG.sync.read(b);
  const w = Math.floor(Math.min(A.width, B.width) / 8);
  const h = Math.floor(Math.min(A.height, B.height) / 8);
  const mean = (img, bx, by) => {
    let s = 0;
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 8; x++) {
        const i = ((by * 8 + y) * img.width + bx * 8 + x) * 4;
        s += img.data[i] + img.data[i + 1] + img.data[i + 2];
      }
    }
    return s / 192;
  };
  let total = 0;
  for (let by = 0; by < h; by++) for (let bx = 0; bx < w; bx++) total += Math.abs(mean(A, bx, by) - mean(B, bx, by));
  return { diff: total / (w * h), sizeMatches: A.width === B.width && A.height === B.height };
}
