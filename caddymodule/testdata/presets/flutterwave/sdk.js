// A line-by-line port of the webhook check in Flutterwave's own WooCommerce
// plugin (Flutterwave/Woocommerce-v2, includes/class-flw-wc-payment-gateway.php,
// flutterwave_webhooks(), plugin 3.2.0): the verif-hash header must be present
// and non-empty and equal (!==) the secret hash set in the plugin. Flutterwave's
// Node SDK (flutterwave-node-v3@1.4.1) has no webhook verify function.
const cb = JSON.parse(process.argv[process.argv.length - 1]);
let signature;
for (const name of Object.keys(cb.headers)) {
	// PHP's $_SERVER['HTTP_VERIF_HASH']: the header whatever its case.
	if (name.toLowerCase() === "verif-hash") signature = cb.headers[name];
}
if (signature === undefined) {
	console.log("invalid: no verif-hash header (redirected home)");
} else if (!signature) {
	console.log("invalid: empty signature");
} else {
	const localSignature = cb.secret; // $this->get_option('secret_hash')
	console.log(signature !== localSignature ? "invalid: hash does not match" : "valid");
}
