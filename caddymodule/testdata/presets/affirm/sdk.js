// Affirm publishes no SDK that verifies webhooks; its own verification code is
// the CodePen its developer documentation points to
// (https://codepen.io/affirm/pen/LYNpwjP): parseHeader(header, "v0") splits
// X-Affirm-Signature on "," and each item on "=", keeping t as the timestamp
// and the v0 value as the signature; the signed payload is timestamp + "." +
// raw body; the expected signature is CryptoJS.HmacSHA512(payload,
// private_key) in hex (a string key is taken as its UTF-8 bytes, as node's
// createHmac does), compared with the header's. This is that code, line by
// line, with node's crypto in place of CryptoJS.
const crypto = require("crypto");
const cb = JSON.parse(process.argv[process.argv.length - 1]);
const private_key = cb.secret;
const x_affirm_signature = cb.headers["X-Affirm-Signature"] || "";
const raw_body = cb.body;

function parseHeader(header, scheme) {
	if (typeof header !== "string") {
		return null;
	}
	return header.split(",").reduce(
		(accum, item) => {
			const kv = item.split("=");
			if (kv[0] === "t") {
				accum.timestamp = kv[1];
			}
			if (kv[0] === scheme) {
				accum.signature = kv[1];
			}
			return accum;
		},
		{ timestamp: -1, signature: -1 },
	);
}

const details = parseHeader(x_affirm_signature, "v0");
if (!details || details.timestamp === -1) {
	console.log("Unable to extract timestamp and signature from header");
} else if (details.signature === -1) {
	console.log("No signature found with expected scheme");
} else {
	const payload = details.timestamp + "." + raw_body;
	const expectedSignature = crypto.createHmac("sha512", private_key).update(payload).digest("hex");
	console.log(expectedSignature == details.signature ? "valid" : "invalid");
}
