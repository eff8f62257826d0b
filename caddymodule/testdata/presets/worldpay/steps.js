// Worldpay publishes no code for its Event-Signature, only three steps
// (https://docs.worldpay.com/access/products/events/signature), followed here
// one by one to judge the callback payhook signed: 1. read Event-Signature,
// one or more comma-separated "{keyId}/{hashFunction}/{signature}" entries
// in any order; 2. the HMAC of the webhook body with the shared secret using
// the hashFunction (SHA256, the only one supported); 3. compare it with the
// signature. The test gives one secret, so every entry is compared with it
// (with a secret per keyId, only its entry would be).
const crypto = require("crypto");

const cb = JSON.parse(process.argv[process.argv.length - 1]);
const header = cb.headers["Event-Signature"] || "";
let valid = false;
for (const entry of header.split(",")) {
	const [keyId, hashFunction, signature] = entry.trim().split("/");
	if (!keyId || hashFunction !== "SHA256" || !signature) {
		continue;
	}
	const mine = crypto.createHmac("sha256", cb.secret).update(cb.body).digest("hex");
	if (mine.length === signature.length && crypto.timingSafeEqual(Buffer.from(mine), Buffer.from(signature.toLowerCase()))) {
		valid = true;
	}
}
console.log(valid ? "valid" : "invalid");
