// Drives billingtest with Stripe's official Node SDK (stripe@18.5.0,
// API 2025-08-27.basil): every read of every object kind the Go side made,
// auto-paginated lists, a few writes, Stripe's error classes, and the
// webhook signatures of delivered events. Reads its input from the JSON
// file named by argv[2]; writes {calls, failures} as JSON to stdout.
import { readFileSync } from "node:fs";
import Stripe from "stripe";

const input = JSON.parse(readFileSync(process.argv[2], "utf8"));
const url = new URL(input.url);
const stripe = new Stripe(input.key, {
  host: url.hostname,
  port: Number(url.port),
  protocol: url.protocol.replace(":", ""),
  maxNetworkRetries: 0,
  telemetry: false,
});

let calls = 0;
const failures = [];

async function check(name, fn, test) {
  calls++;
  try {
    const got = await fn();
    const bad = test ? test(got) : "";
    if (bad) failures.push(`${name}: ${bad}`);
  } catch (e) {
    failures.push(`${name}: ${e.type || ""} ${e.statusCode || ""} ${e.code || ""} ${e.message}`);
  }
}

async function refused(name, fn, status, code, type) {
  calls++;
  try {
    await fn();
    failures.push(`${name}: succeeded, want ${status} ${code}`);
  } catch (e) {
    if (e.statusCode !== status || (code && e.code !== code) || e.type !== type) {
      failures.push(`${name}: got ${e.type} ${e.statusCode} ${e.code}, want ${type} ${status} ${code}`);
    }
  }
}

const is = (obj, kind, id) => (obj.object !== kind ? `object ${obj.object}, want ${kind}` : id && obj.id !== id ? `id ${obj.id}, want ${id}` : "");

async function all(list) {
  const out = [];
  for await (const x of list) out.push(x);
  return out;
}

const ids = input.ids;
const retrieve = {
  customer: (id) => stripe.customers.retrieve(id),
  product: (id) => stripe.products.retrieve(id),
  price: (id) => stripe.prices.retrieve(id, { expand: ["product"] }),
  "checkout.session": (id) => stripe.checkout.sessions.retrieve(id, { expand: ["line_items", "subscription"] }),
  subscription: (id) => stripe.subscriptions.retrieve(id, { expand: ["latest_invoice"] }),
  invoice: (id) => stripe.invoices.retrieve(id, { expand: ["payments"] }),
  invoice_payment: (id) => stripe.invoicePayments.retrieve(id),
  payment_intent: (id) => stripe.paymentIntents.retrieve(id),
  charge: (id) => stripe.charges.retrieve(id),
  payment_method: (id) => stripe.paymentMethods.retrieve(id),
  refund: (id) => stripe.refunds.retrieve(id),
  dispute: (id) => stripe.disputes.retrieve(id),
  subscription_schedule: (id) => stripe.subscriptionSchedules.retrieve(id),
  event: (id) => stripe.events.retrieve(id),
};
for (const [kind, list] of Object.entries(ids)) {
  for (const id of list) {
    await check(`retrieve ${kind} ${id}`, () => retrieve[kind](id), (o) => is(o, kind, id));
  }
}

// Lists, auto-paginated by the SDK (limit 2 makes it follow has_more).
const lists = {
  customers: () => stripe.customers.list({ limit: 2 }),
  products: () => stripe.products.list({ limit: 2 }),
  prices: () => stripe.prices.list({ limit: 2, expand: ["data.product"] }),
  "checkout sessions": () => stripe.checkout.sessions.list({ limit: 2 }),
  subscriptions: () => stripe.subscriptions.list({ limit: 2, status: "all" }),
  invoices: () => stripe.invoices.list({ limit: 2 }),
  "invoice payments": () => stripe.invoicePayments.list({ limit: 2 }),
  refunds: () => stripe.refunds.list({ limit: 2 }),
  disputes: () => stripe.disputes.list({ limit: 2 }),
  events: () => stripe.events.list({ limit: 2 }),
  "webhook endpoints": () => stripe.webhookEndpoints.list({ limit: 2 }),
};
for (const [name, list] of Object.entries(lists)) {
  const want = input.counts[name];
  await check(`list ${name}`, () => all(list()), (xs) =>
    want !== undefined && xs.length !== want ? `${xs.length} items, want ${want}` : xs.length === 0 ? "empty" : "");
}

// Writes.
let customer;
await check("create customer", async () => (customer = await stripe.customers.create({ email: "node@example.com", metadata: { via: "node" } })),
  (c) => is(c, "customer") || (c.metadata.via !== "node" ? "metadata lost" : ""));
await check("update customer", () => stripe.customers.update(customer.id, { name: "Node" }), (c) => (c.name !== "Node" ? `name ${c.name}` : ""));
let session;
await check("create checkout session", async () => (session = await stripe.checkout.sessions.create({
  mode: "subscription", customer: customer.id, success_url: "https://app.test/ok",
  line_items: [{ price: input.price, quantity: 1 }],
})), (s) => is(s, "checkout.session") || (s.status !== "open" ? `status ${s.status}` : "") || (!s.url ? "no url" : ""));
await check("expire checkout session", () => stripe.checkout.sessions.expire(session.id), (s) => (s.status !== "expired" ? `status ${s.status}` : ""));
await check("create portal session", () => stripe.billingPortal.sessions.create({ customer: customer.id, return_url: "https://app.test/account" }),
  (s) => is(s, "billing_portal.session") || (!s.url ? "no url" : ""));
await check("update subscription", () => stripe.subscriptions.update(input.liveSubscription, { metadata: { node: "yes" } }),
  (s) => (s.metadata.node !== "yes" ? "metadata lost" : ""));
await check("create refund", () => stripe.refunds.create({ payment_intent: input.refundable, amount: 100 }),
  (r) => is(r, "refund") || (r.status !== "succeeded" ? `status ${r.status}` : ""));

// Stripe's errors, as the SDK's classes.
await refused("missing subscription", () => stripe.subscriptions.retrieve("sub_missing"), 404, "resource_missing", "StripeInvalidRequestError");
await refused("bad parameter", () => stripe.customers.create({ colour: "red" }), 400, "parameter_unknown", "StripeInvalidRequestError");
await refused("publishable key", () => new Stripe("pk_test_x", { host: url.hostname, port: Number(url.port), protocol: "http" }).customers.list(),
  401, undefined, "StripeAuthenticationError");

// Webhook signatures, as an app on the SDK verifies them.
for (const p of input.payloads) {
  calls++;
  try {
    const ev = await stripe.webhooks.constructEventAsync(p.body, p.header, input.secret);
    if (ev.object !== "event") failures.push(`webhook ${ev.id}: object ${ev.object}`);
  } catch (e) {
    failures.push(`webhook: ${e.message}`);
  }
}
calls++;
try {
  await stripe.webhooks.constructEventAsync(input.payloads[0].body, input.payloads[0].header, "whsec_wrong");
  failures.push("webhook with the wrong secret verified");
} catch (e) {
  if (e.type !== "StripeSignatureVerificationError") failures.push(`wrong secret: ${e.type}`);
}

process.stdout.write(JSON.stringify({ calls, failures }));
