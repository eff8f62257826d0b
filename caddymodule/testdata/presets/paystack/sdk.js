// A line-by-line port of Paystack's own verification snippet, the PHP of
// paystack.com/docs/payments/webhooks ("Verify event origin"):
// PaystackOSS/doc-code-snippets src/doc/payments/webhooks/verifying-transaction/index.php
// (commit 94af513). Paystack publishes no SDK with a verify function.
const crypto = require("crypto");
const cb = JSON.parse(process.argv[process.argv.length - 1]);
// if ((strtoupper($_SERVER['REQUEST_METHOD']) != 'POST' ) || !array_key_exists('HTTP_X_PAYSTACK_SIGNATURE', $_SERVER) ) exit();
if (cb.method.toUpperCase() !== "POST" || !("X-Paystack-Signature" in cb.headers)) {
	console.log("invalid: not a POST with x-paystack-signature");
	process.exit(0);
}
// $input = @file_get_contents("php://input");
const input = Buffer.from(cb.body, "utf8");
// define('PAYSTACK_SECRET_KEY','SECRET_KEY');
const PAYSTACK_SECRET_KEY = cb.secret;
// if($_SERVER['HTTP_X_PAYSTACK_SIGNATURE'] !== hash_hmac('sha512', $input, PAYSTACK_SECRET_KEY)) exit();
if (cb.headers["X-Paystack-Signature"] !== crypto.createHmac("sha512", PAYSTACK_SECRET_KEY).update(input).digest("hex")) {
	console.log("invalid");
	process.exit(0);
}
console.log("valid");
