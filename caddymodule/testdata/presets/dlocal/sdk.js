// dLocal publishes no SDK that verifies a notification; it says to check one
// as it signs its API: its documentation's Java SignatureCalculator
// (docs.dlocal.com, Payins API reference, Security: calculateSignature(x_Login,
// x_Date, secretKey, body)) writes x_Login, x_Date and body as UTF-8 bytes
// into one buffer, takes the HMAC-SHA256 of it with secretKey.getBytes(), and
// formats the digest as lower-case hex; the Authorization header is
// "V2-HMAC-SHA256, Signature: " and that hex. This is that function, line by
// line, applied to the notification's X-Login, X-Date and body, and compared
// with its Authorization header.
const crypto = require("crypto");
const cb = JSON.parse(process.argv[process.argv.length - 1]);

function calculateSignature(x_Login, x_Date, secretKey, body) {
	// Create byte array with the required data for the signature.
	const bout = Buffer.concat([Buffer.from(x_Login, "utf8"), Buffer.from(x_Date, "utf8"), Buffer.from(body, "utf8")]);
	// Calculate the signature.
	const mac = crypto.createHmac("sha256", Buffer.from(secretKey));
	const signature = mac.update(bout).digest();
	// Create a String with the signature value.
	let formatted = "";
	for (const b of signature) {
		formatted += b.toString(16).padStart(2, "0");
	}
	return formatted;
}

const xLogin = cb.headers["X-Login"];
const xDate = cb.headers["X-Date"];
const authorization = cb.headers["Authorization"];
if (!xLogin || !xDate || !authorization) {
	console.log("missing X-Login, X-Date or Authorization");
} else {
	const expected = "V2-HMAC-SHA256, Signature: " + calculateSignature(xLogin, xDate, cb.secret, cb.body);
	console.log(expected === authorization ? "valid" : "invalid");
}
