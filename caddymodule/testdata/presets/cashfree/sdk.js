// Cashfree's Node SDK (cashfree-pg on npm) judges the callback payhook signed:
// PGVerifyWebhookSignature(x-webhook-signature, raw body, x-webhook-timestamp)
// with the PG secret key the Cashfree client is made with; it throws when the
// signature does not match.
const { Cashfree, CFEnvironment } = require("cashfree-pg");
const cb = JSON.parse(process.argv[process.argv.length - 1]);
const cashfree = new Cashfree(CFEnvironment.SANDBOX, "client-id", cb.secret);
try {
	cashfree.PGVerifyWebhookSignature(cb.headers["X-Webhook-Signature"] || "", cb.body, cb.headers["X-Webhook-Timestamp"] || "");
	console.log("valid");
} catch (e) {
	console.log("invalid: " + e.message);
}
