// Coinbase Commerce's Node SDK (coinbase-commerce-node on npm) judges the
// callback payhook signed: Webhook.verifySigHeader(raw body,
// X-CC-Webhook-Signature, shared secret) throws when the signature is wrong.
const { Webhook } = require("coinbase-commerce-node");
const cb = JSON.parse(process.argv[process.argv.length - 1]);
const sig = cb.headers["X-Cc-Webhook-Signature"] || "";
try {
	console.log(Webhook.verifySigHeader(cb.body, sig, cb.secret) === true ? "valid" : "invalid");
} catch (e) {
	console.log("invalid: " + e.name);
}
