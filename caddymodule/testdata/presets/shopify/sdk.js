// Shopify's Node library (@shopify/shopify-api on npm) judges the callback
// payhook signed: shopify.webhooks.validate, as an app calls it, with the
// client secret as apiSecretKey. It checks X-Shopify-Hmac-Sha256 (the base64
// HMAC-SHA256 of the raw body) first; only then does it require the unsigned
// headers every Shopify delivery carries (topic, shop domain, API version,
// webhook id). payhook's send signs the body alone and sets none of them, so
// the ones missing are added here, after the signature and outside it.
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
const unsigned = {
	"x-shopify-topic": "orders/paid",
	"x-shopify-shop-domain": "payhook-test.myshopify.com",
	"x-shopify-api-version": "2026-07",
	"x-shopify-webhook-id": "b54557e4-8a5f-4bf7-9d70-bcd043d4d3a1",
};
for (const [name, value] of Object.entries(unsigned)) {
	if (!(name in headers)) headers[name] = value;
}
const rawRequest = { method: cb.method || "POST", url: new URL(cb.url || "https://shop.example.com/hooks").pathname, headers };
shopify.webhooks
	.validate({ rawBody: cb.body, rawRequest, rawResponse: {} })
	.then((result) => console.log(result.valid ? "valid" : "invalid: " + result.reason))
	.catch((e) => console.log("error: " + e.message));
