// Shopify's Node library (@shopify/shopify-api on npm) judges the callback
// payhook signed: shopify.webhooks.validate, as an app calls it, with the
// client secret as apiSecretKey. It checks X-Shopify-Hmac-Sha256 (the base64
// HMAC-SHA256 of the raw body), then requires the unsigned headers every
// Shopify delivery carries (topic, shop domain, API version, webhook id),
// which the preset's sample sets.
require("@shopify/shopify-api/adapters/node");
const { shopifyApi, ApiVersion, LogSeverity } = require("@shopify/shopify-api");

const cb = JSON.parse(process.argv[process.argv.length - 1]);
const shopify = shopifyApi({
	apiKey: "payhook-test",
	apiSecretKey: cb.secret,
	apiVersion: ApiVersion.July26,
	hostName: "shop.example.com",
	isEmbeddedApp: false,
	logger: { level: LogSeverity.Error, log: () => {} },
});
const headers = {};
for (const [name, value] of Object.entries(cb.headers)) {
	headers[name.toLowerCase()] = value;
}
const rawRequest = { method: cb.method || "POST", url: new URL(cb.url || "https://shop.example.com/hooks").pathname, headers };
shopify.webhooks
	.validate({ rawBody: cb.body, rawRequest, rawResponse: {} })
	.then((result) => console.log(result.valid ? "valid" : "invalid: " + result.reason))
	.catch((e) => console.log("error: " + e.message));
