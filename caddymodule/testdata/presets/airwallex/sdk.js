// Airwallex publishes no SDK with a webhook verifier (@airwallex/node-sdk has
// none); its "Code examples" page gives the verification in Java. This is a
// line-by-line port of that example's receive method: valueToDigest is
// x-timestamp followed by the payload, and the signature must equal
// HmacUtils(HMAC_SHA_256, secret).hmacHex(valueToDigest).
// https://www.airwallex.com/docs/developer-tools__listen-for-webhook-events__code-examples
const crypto = require("crypto");
const cb = JSON.parse(process.argv[process.argv.length - 1]);
const payload = cb.body;
let valueToDigest = "";
// Get the timestamp from header
const timestamp = cb.headers["X-Timestamp"];
valueToDigest += timestamp;
valueToDigest += payload;
// Get the signature from header
const signature = cb.headers["X-Signature"];
// Get your secret
const secret = cb.secret;
// Check if calculated signature matches the signature from the request
const hmacHex = crypto.createHmac("sha256", secret).update(valueToDigest).digest("hex");
console.log(hmacHex === signature ? "valid" : "invalid");
