// Mercado Pago's Node SDK (mercadopago on npm) judges the callback payhook
// signed: WebhookSignatureValidator.validate({xSignature, xRequestId, dataId,
// secret}) with data.id from the notification URL's query string, as Mercado
// Pago's docs call it. It throws InvalidWebhookSignatureError when the
// signature does not match. The body is not part of what it checks.
const { WebhookSignatureValidator } = require("mercadopago");
const cb = JSON.parse(process.argv[process.argv.length - 1]);
const header = (name) => {
	for (const k of Object.keys(cb.headers)) {
		if (k.toLowerCase() === name) return cb.headers[k];
	}
	return undefined;
};
try {
	WebhookSignatureValidator.validate({
		xSignature: header("x-signature"),
		xRequestId: header("x-request-id"),
		dataId: new URL(cb.url).searchParams.get("data.id"),
		secret: cb.secret,
	});
	console.log("valid");
} catch (e) {
	console.log("invalid: " + (e.reason || e.message));
}
