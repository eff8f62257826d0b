// A line-by-line port of Lemon Squeezy's own verification code, the
// VerifyWebhookSignature middleware of its Laravel package
// (lemonsqueezy/laravel, lmsqueezy/laravel src/Http/Middleware/VerifyWebhookSignature.php,
// commit 50fcb3f after v1.8.5). Lemon Squeezy's npm SDK has no verify function.
const crypto = require("crypto");
const cb = JSON.parse(process.argv[process.argv.length - 1]);
// PHP's hash_equals: false when the lengths differ, else a constant-time comparison.
function hash_equals(known, user) {
	const a = Buffer.from(known, "utf8"), b = Buffer.from(user, "utf8");
	return a.length === b.length && crypto.timingSafeEqual(a, b);
}
// protected function isInvalidSignature(string $payload, string $signature): bool
function isInvalidSignature(payload, signature) {
	// $hash = hash_hmac('sha256', $payload, config('lemon-squeezy.signing_secret'));
	const hash = crypto.createHmac("sha256", cb.secret).update(payload).digest("hex");
	// return ! hash_equals($hash, $signature);
	return !hash_equals(hash, signature);
}
// if ($this->isInvalidSignature($request->getContent(), $request->header('x-signature'))) throw new AccessDeniedHttpException(...)
const header = Object.keys(cb.headers).find((k) => k.toLowerCase() === "x-signature");
console.log(isInvalidSignature(Buffer.from(cb.body, "utf8"), header ? cb.headers[header] : "") ? "invalid" : "valid");
