// Runs the independent client against the real server that scripts/test starts.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { Device } from "./client.mjs";

const server = process.env.ONSITE_TEST_SERVER;
const admin = process.env.ONSITE_TEST_ADMIN;
const samples = process.env.ONSITE_SAMPLES;

async function json(path, token, body) {
  const r = await fetch(`${server}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const v = await r.json();
  assert.ok(r.ok, `${path}: ${r.status} ${JSON.stringify(v)}`);
  return v;
}

test("a client written from the protocol document syncs, is refused a dispatcher field, and logs a journal entry", async () => {
  const provider = `prov-node-${process.pid}`;
  const { dispatcher_token: dispatcher } = await json("/v1/admin/providers", admin, { id: provider, name: "Node client" });
  const order = JSON.parse(fs.readFileSync(samples, "utf8"))[0];
  order.id = "WO-NODE-0001";
  order.provider.id = provider;
  order.engineer = { id: "eng-node", name: "Node" };
  await json("/v1/orders", dispatcher, [order]);
  const { code } = await json("/v1/enrolment-codes", dispatcher, { engineer_id: "eng-node" });

  const d = new Device(server);
  const enrolled = await d.enrol(code);
  assert.equal(enrolled.engineer_id, "eng-node");

  // First sync: the order arrives whole.
  const first = await d.sync();
  assert.deepEqual(first.docs.map((x) => [x.id, x.full]), [["WO-NODE-0001", true]]);
  assert.equal(String(d.docs.get("WO-NODE-0001").status.val ?? d.docs.get("WO-NODE-0001").status), "Assigned", "scalar strings arrive as ImmutableString");

  // An engineer's note is accepted and reaches the dispatcher.
  const now = Date.now();
  const pushed = await d.sync([d.note("WO-NODE-0001", "written by the Node client", now)]);
  assert.deepEqual(pushed.rejected, []);
  const onServer = await json("/v1/orders/WO-NODE-0001", dispatcher);
  assert.deepEqual(onServer.notes.map((n) => [n.device, n.text]), [[d.id, "written by the Node client"]]);

  // The priority is the dispatcher's: refused, with the server's document to rebase on.
  const forged = await d.sync([d.edit("WO-NODE-0001", (doc) => { doc.priority = "Low"; })]);
  assert.equal(forged.rejected.length, 1);
  assert.equal(forged.rejected[0].code, "forbidden_field");
  assert.equal(forged.rejected[0].field, "priority");
  assert.ok(forged.rejected[0].server_doc.length > 0);
  assert.equal((await json("/v1/orders/WO-NODE-0001", dispatcher)).priority, "urgent");

  // A signed journal entry is verified into the provider's log.
  const ack = await d.uploadJournal([d.entry("note", "WO-NODE-0001", { text: "written by the Node client" }, now)]);
  assert.equal(ack.acked_seq, 1);
  assert.equal(ack.checkpoint.size >= 1, true);
  assert.equal(ack.proofs[0].seq, 1);
});
