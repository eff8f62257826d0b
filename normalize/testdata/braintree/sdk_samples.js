// Writes one golden request per notification kind, each the form that
// braintree_node's webhookTesting.sampleNotification returns, signed with
// the golden keys (SOURCES.md). Run in a directory where braintree@3.40.0
// is installed: node sdk_samples.js <testdata/braintree>
const fs = require("fs");
const path = require("path");
const braintree = require("braintree");
const gateway = new braintree.BraintreeGateway({
  environment: braintree.Environment.Sandbox,
  merchantId: "payhook_golden",
  publicKey: "golden_public_key",
  privateKey: "golden_private_key",
});
const out = process.argv[2];
const kinds = {
  transaction_settled: "txn_settled_1",
  transaction_settlement_declined: "txn_declined_1",
  refund_failed: "txn_refund_1",
  disbursement: "disb_1",
  dispute_opened: "dsp_opened_1",
  dispute_lost: "dsp_lost_1",
  dispute_won: "dsp_won_1",
  subscription_charged_successfully: "sub_charged_1",
  subscription_charged_unsuccessfully: "sub_unpaid_1",
  subscription_went_past_due: "sub_past_due_1",
  subscription_canceled: "sub_canceled_1",
  local_payment_completed: "lp_1",
  local_payment_funded: "lp_2",
  local_payment_reversed: "lp_3",
  local_payment_expired: "lp_4",
  check: "",
};
for (const [kind, id] of Object.entries(kinds)) {
  const sample = gateway.webhookTesting.sampleNotification(kind, id);
  const body = new URLSearchParams(sample).toString();
  const request = "POST /hooks/braintree HTTP/1.1\nHost: shop.example.com\n" +
    "Content-Type: application/x-www-form-urlencoded\nContent-Length: " + Buffer.byteLength(body) + "\n\n" + body;
  fs.writeFileSync(path.join(out, "sdk_" + kind + ".in"), request);
}
