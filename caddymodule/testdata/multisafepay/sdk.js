// A line-by-line port of MultiSafepay's own notification check, published in
// PHP only: MultiSafepay/php-sdk 5.21.0, src/Util/Notification.php,
// Notification::verifyNotification($request, $auth, $apiKey,
// $validationTimeInSeconds = 600), the function MultiSafepay's webhook page
// points to. It judges the callback payhook signed.
const crypto = require("crypto");

function verifyNotification(request, auth, apiKey, validationTimeInSeconds = 600) {
	if (typeof request !== "string") {
		throw new Error("Request can only be a string or \\MultiSafepay\\Api\\Transactions\\TransactionResponse with raw data");
	}
	if (validationTimeInSeconds < 0) {
		throw new Error("Argument validationTimeInSeconds must be equal or greater than 0");
	}

	// $authHeaderDecoded = base64_decode($auth);
	const authHeaderDecoded = Buffer.from(auth, "base64").toString("latin1");
	// [$timestamp, $sha512hexPayload] = explode(':', $authHeaderDecoded);
	const [timestamp, sha512hexPayload] = authHeaderDecoded.split(":");

	// (int)$timestamp: PHP reads the leading digits, 0 when there are none.
	const ts = parseInt(timestamp, 10) || 0;
	if (validationTimeInSeconds > 0 && ts + validationTimeInSeconds < Math.floor(Date.now() / 1000)) {
		return false;
	}

	const payload = timestamp + ":" + request;
	// hash_hmac('sha512', $payload, trim($apiKey))
	const hash = crypto.createHmac("sha512", apiKey.replace(/^[ \t\n\r\0\x0B]+|[ \t\n\r\0\x0B]+$/g, "")).update(payload).digest("hex");

	// hash_equals($hash, $sha512hexPayload)
	if (typeof sha512hexPayload !== "string" || sha512hexPayload.length !== hash.length) {
		return false;
	}
	return crypto.timingSafeEqual(Buffer.from(hash), Buffer.from(sha512hexPayload));
}

const cb = JSON.parse(process.argv[process.argv.length - 1]);
try {
	console.log(verifyNotification(cb.body, cb.headers["Auth"] || "", cb.secret) ? "valid" : "invalid");
} catch (e) {
	console.log("error: " + e.message);
}
