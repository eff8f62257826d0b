// PhonePe's Node SDK (pg-sdk-node on npm) judges the callback payhook signed:
// StandardCheckoutClient.validateCallback(username, password, Authorization,
// body), which throws PhonePeException("Invalid Callback") unless
// Authorization is the hex SHA-256 of "username:password". payhook's secret is
// that pair; it is split at its first colon.
// pg-sdk-node@2.0.2 asks for class-transformer ^0.4.0, and npm installs 0.4.1,
// which calls plainToClass plainToInstance: validateCallback then fails after
// its check, deserializing the body. The old name is given back so that the
// SDK's function runs to its end.
const transformer = require("class-transformer");
transformer.plainToClass = transformer.plainToClass || transformer.plainToInstance;
const { StandardCheckoutClient, Env } = require("pg-sdk-node");
const cb = JSON.parse(process.argv[process.argv.length - 1]);
const colon = cb.secret.indexOf(":");
if (colon < 0) {
	console.log("error: the secret is not username:password");
	process.exit(0);
}
const username = cb.secret.slice(0, colon);
const password = cb.secret.slice(colon + 1);
const client = StandardCheckoutClient.getInstance("client-id", "client-secret", 1, Env.SANDBOX, false);
try {
	client.validateCallback(username, password, cb.headers["Authorization"] || "", cb.body);
	console.log("valid");
} catch (e) {
	console.log("invalid: " + e.message);
}
