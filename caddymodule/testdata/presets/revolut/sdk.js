// Revolut publishes no SDK with a webhook verifier; its Merchant API page
// "Webhook signature verification" gives a Python reference implementation.
// This is a line-by-line port of it, with the page's comparison rule: the
// computed signature must equal the Revolut-Signature header's signature, or
// one of its comma-separated signatures during a rotation.
// https://developer.revolut.com/docs/guides/merchant/monitor-and-observe/webhooks/verify-the-payload-signature
const crypto = require("crypto");
const cb = JSON.parse(process.argv[process.argv.length - 1]);
const signing_secret = cb.secret;
const raw_payload = cb.body;
const timestamp = cb.headers["Revolut-Request-Timestamp"] || "";
const payload_to_sign = "v1." + timestamp + "." + raw_payload;
const signature = "v1=" + crypto.createHmac("sha256", Buffer.from(signing_secret, "utf-8")).update(Buffer.from(payload_to_sign, "utf-8")).digest("hex");
const received = (cb.headers["Revolut-Signature"] || "").split(",");
console.log(received.includes(signature) ? "valid" : "invalid");
