// BTCPay Server's verify function, ported line by line from its official PHP
// client (btcpayserver/btcpayserver-greenfield-php v2.9.0,
// src/Client/Webhook.php, Webhook::isIncomingWebhookRequestValid): BTCPay
// publishes no Node SDK. PHP's truthiness ("" and "0" are false),
// hash_hmac('sha256', …) in lower-case hex and hash_equals are kept.
const crypto = require("crypto");

function phpTruthy(s) {
	return s !== "" && s !== "0";
}

function hashEquals(known, user) {
	const a = Buffer.from(known), b = Buffer.from(user);
	return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function isIncomingWebhookRequestValid(requestBody, btcpaySigHeader, secret) {
	if (phpTruthy(requestBody) && phpTruthy(btcpaySigHeader)) {
		const expectedHeader = "sha256=" + crypto.createHmac("sha256", secret).update(requestBody).digest("hex");
		if (hashEquals(expectedHeader, btcpaySigHeader)) {
			return true;
		}
	}
	return false;
}

const cb = JSON.parse(process.argv[process.argv.length - 1]);
const sig = cb.headers["Btcpay-Sig"] || "";
console.log(isIncomingWebhookRequestValid(cb.body, sig, cb.secret) ? "valid" : "invalid");
