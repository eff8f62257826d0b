// Paddle's Node.js SDK (@paddle/paddle-node-sdk) judges the callback payhook
// signed: webhooks.isSignatureValid(body, secret, Paddle-Signature), which
// splits the header on ";" and allows 5 s of age.
const { Paddle } = require("@paddle/paddle-node-sdk");
const cb = JSON.parse(process.argv[process.argv.length - 1]);
const paddle = new Paddle("pdl_sdbx_apikey_payhook_test");
paddle.webhooks
	.isSignatureValid(cb.body, cb.secret, cb.headers["Paddle-Signature"] || "")
	.then((ok) => console.log(ok ? "valid" : "invalid"), (e) => console.log("error: " + e.message));
