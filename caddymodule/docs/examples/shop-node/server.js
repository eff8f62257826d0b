// The shop's endpoint for payhook, in Node with Express and the official
// standardwebhooks library (npm install, then node server.js).
//
// payhook has already verified the provider's callback; this endpoint
// checks that the envelope comes from payhook (sign_upstream: Standard
// Webhooks headers), stores each event once under its id, and answers 2xx
// only once the event is stored.
//
// Configuration, from the environment:
//   PAYHOOK_SHOP_SECRET  the whsec_… secret given to payhook's sign_upstream
//   SHOP_DATA_DIR        where the sample keeps its events and its order log
//   PORT, HOST           where it listens (8080 on 127.0.0.1)
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");
const express = require("express");
const { Webhook } = require("standardwebhooks");

const webhook = new Webhook(process.env.PAYHOOK_SHOP_SECRET); // throws on a malformed secret
const dataDir = process.env.SHOP_DATA_DIR || path.join(__dirname, "data");

// storeOnce writes the event under its id unless it is already stored, and
// returns whether it was new. The file is written in full under a temporary
// name, then linked to its final name: linking fails when that exists, so
// of two deliveries of one event at once, exactly one stores it.
// In your shop: one database transaction that inserts the id into a table
// where it is the primary key and updates the order.
function storeOnce(id, body) {
  const events = path.join(dataDir, "events");
  fs.mkdirSync(events, { recursive: true, mode: 0o700 });
  const name = crypto.createHash("sha256").update(id).digest("hex"); // no id can name another path
  const final = path.join(events, name + ".json");
  const temporary = path.join(events, `new-${name}-${process.pid}-${crypto.randomUUID()}`);
  fs.writeFileSync(temporary, body, { mode: 0o600 });
  try {
    fs.linkSync(temporary, final);
    return true;
  } catch (err) {
    if (err.code === "EEXIST") return false;
    throw err;
  } finally {
    fs.unlinkSync(temporary);
  }
}

const app = express();

// The signature covers the exact bytes: read the body raw, not parsed.
app.post("*path", express.raw({ type: "*/*", limit: "1mb" }), (req, res) => {
  const body = req.body instanceof Buffer ? req.body.toString("utf8") : "";

  // 1. From payhook? verify checks webhook-signature (any of its v1
  // signatures) and that webhook-timestamp is within five minutes.
  let event;
  try {
    event = webhook.verify(body, req.headers);
  } catch (err) {
    return res.status(401).type("text/plain").send("signature\n");
  }

  // 2. The envelope: a CloudEvents document whose id is the signed webhook-id.
  if (!event || event.id !== req.headers["webhook-id"] || typeof event.data !== "object" || event.data === null) {
    return res.status(400).type("text/plain").send("not an envelope\n");
  }
  const data = event.data;

  // 3. Once per id: a retry or replay of an event has the same id.
  let isNew;
  try {
    isNew = storeOnce(event.id, body);
  } catch (err) {
    console.error(err);
    return res.status(503).type("text/plain").send("not stored\n"); // non-2xx: delivered again
  }
  if (!isNew) {
    return res.status(200).type("text/plain").send("duplicate\n");
  }

  // 4. Act on it. The amount is an integer of minor units (999 = 9.99 EUR):
  // compare it with the order's total as integers, never as floats.
  const order = data.merchant_reference; // your order number, or null
  const status = data.status; //           captured, refunded, failed, … (the envelope's list)
  const amount = data.amount; //           { value: 999, currency: "EUR" } or null
  const line = [order ?? "-", status, amount?.value ?? "-", amount?.currency ?? "-", data.provider, event.id].join(" ");
  fs.appendFileSync(path.join(dataDir, "orders.log"), line + "\n");

  res.status(200).type("text/plain").send("stored\n");
});

const port = Number(process.env.PORT || 8080);
const host = process.env.HOST || "127.0.0.1";
app.listen(port, host, () => console.log(`shop listening on http://${host}:${port}`));
