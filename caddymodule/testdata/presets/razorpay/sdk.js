// Razorpay's Node SDK (razorpay on npm) judges the callback payhook signed:
// validateWebhookSignature(body, X-Razorpay-Signature, webhook secret).
const { validateWebhookSignature } = require("razorpay/dist/utils/razorpay-utils");
const cb = JSON.parse(process.argv[process.argv.length - 1]);
const sig = cb.headers["X-Razorpay-Signature"] || "";
try {
	console.log(validateWebhookSignature(cb.body, sig, cb.secret) ? "valid" : "invalid");
} catch (e) {
	console.log("error: " + e.message);
}
