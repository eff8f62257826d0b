// A line-by-line port of PayU's own notification check, published in PHP
// only: PayU-EMEA/openpayu_php v2.4.3, OpenPayU_Order::consumeNotification
// (lib/OpenPayU/v2/Order.php) as its example examples/v2/order/OrderNotify.php
// calls it (the body trimmed), with OpenPayU_HttpCurl::getSignature,
// OpenPayU::verifyDocumentSignature, OpenPayU_Util::parseSignature and
// OpenPayU_Util::verifySignature: the hash of the body followed by the
// second key (MD5), not an HMAC. It judges the callback payhook signed.
const crypto = require("crypto");

// OpenPayU_Util::ALGORITHMS_TO_HASH and toHashAlgorithm.
const ALGORITHMS_TO_HASH = { "SHA": "SHA256", "SHA-1": "SHA1", "SHA-256": "SHA256", "SHA-384": "SHA384", "SHA-512": "SHA512" };
function toHashAlgorithm(algorithm) {
	return ALGORITHMS_TO_HASH[algorithm] ?? algorithm;
}

// OpenPayU_HttpCurl::getSignature: the first header named like
// X-OpenPayU-Signature or OpenPayu-Signature, case-insensitively.
function getSignature(headers) {
	for (const [name, value] of Object.entries(headers)) {
		if (/X-OpenPayU-Signature/i.test(name) || /OpenPayu-Signature/i.test(name)) {
			return value;
		}
	}
	return null;
}

// OpenPayU_Util::parseSignature
function parseSignature(data) {
	if (!data) {
		return null;
	}
	const signatureData = {};
	const list = data.replace(/;+$/, "").split(";");
	for (const value of list) {
		const explode = value.split("=");
		if (explode.length != 2) {
			return null;
		}
		signatureData[explode[0]] = explode[1];
	}
	return signatureData;
}

// OpenPayU_Util::verifySignature
function verifySignature(message, signature, signatureKey, algorithm = "MD5") {
	if (!signatureKey) {
		throw new Error("Merchant Signature Key should not be null or empty.");
	}
	const hashAlgorithm = toHashAlgorithm(algorithm).toUpperCase();
	if (!["MD5", "SHA1", "SHA256", "SHA384", "SHA512"].includes(hashAlgorithm)) {
		throw new Error("Unknown algorithm.");
	}
	// hash($hashAlgorithm, $message . $signatureKey)
	const hash = crypto.createHash(hashAlgorithm.toLowerCase()).update(message + signatureKey).digest("hex");
	// hash_equals($hash, $signature)
	return hash.length === signature.length && crypto.timingSafeEqual(Buffer.from(hash), Buffer.from(signature));
}

// OpenPayU::verifyDocumentSignature
function verifyDocumentSignature(data, incomingSignature, signatureKey) {
	const sign = parseSignature(incomingSignature);
	if (sign === null || !("signature" in sign) || !("algorithm" in sign)) {
		throw new Error("Signature not found");
	}
	if (false === verifySignature(data, sign.signature, signatureKey, sign.algorithm)) {
		throw new Error("Invalid signature - " + sign.signature);
	}
}

// OpenPayU_Order::consumeNotification, as OrderNotify.php calls it.
const cb = JSON.parse(process.argv[process.argv.length - 1]);
try {
	const data = cb.body.trim();
	if (!data) {
		throw new Error("Empty value of data");
	}
	verifyDocumentSignature(data, getSignature(cb.headers), cb.secret);
	console.log("valid");
} catch (e) {
	console.log("invalid: " + e.message);
}
