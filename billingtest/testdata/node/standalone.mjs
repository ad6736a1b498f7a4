// Drives the standalone offline Stripe (`billing stripe serve`, another
// process) with Stripe's official Node SDK (stripe@18.5.0, API
// 2025-08-27.basil), as an app in Node would: a customer, a product, a
// monthly price, a subscription Checkout paid on its hosted page, the
// clock moved 31 days through the control route (with the SDK's
// rawRequest), and the renewal found in the events. Reads {url, key} from
// the JSON file named by argv[2]; writes {calls, failures, subscription,
// customer} as JSON to stdout (see cmd/billing/stripe_test.go).
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
const fail = (msg) => failures.push(msg);

async function check(name, fn, test) {
  calls++;
  try {
    const got = await fn();
    const bad = test ? test(got) : "";
    if (bad) fail(`${name}: ${bad}`);
    return got;
  } catch (e) {
    fail(`${name}: ${e.type || ""} ${e.statusCode || ""} ${e.code || ""} ${e.message}`);
    return undefined;
  }
}

// rawRequest sends any path with the SDK's key, encoding and errors.
const raw = (method, path, params) => stripe.rawRequest(method, path, params);

const customer = await check("create customer", () => stripe.customers.create({ email: "node@example.com" }),
  (c) => (c.object !== "customer" ? `object ${c.object}` : ""));
const product = await check("create product", () => stripe.products.create({ name: "Node Pro" }),
  (p) => (p.object !== "product" ? `object ${p.object}` : ""));
const price = await check("create price", () => stripe.prices.create({
  product: product?.id, unit_amount: 1500, currency: "usd", recurring: { interval: "month" },
}), (p) => (p.recurring?.interval !== "month" ? `recurring ${JSON.stringify(p.recurring)}` : ""));
const session = await check("create checkout session", () => stripe.checkout.sessions.create({
  mode: "subscription", customer: customer?.id, success_url: "https://app.test/ok",
  line_items: [{ price: price?.id, quantity: 1 }],
}), (s) => (!s.url?.startsWith(`${input.url}/pay/`) ? `url ${s.url}, want it under ${input.url}/pay/` : ""));

// Pay on the hosted page, as a browser submits its form.
calls++;
if (session) {
  const resp = await fetch(session.url, {
    method: "POST", redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ card: "4242 4242 4242 4242" }),
  });
  if (resp.status !== 303 || resp.headers.get("location") !== "https://app.test/ok") {
    fail(`pay: status ${resp.status}, location ${resp.headers.get("location")}`);
  }
}
const paid = await check("retrieve checkout session", () => stripe.checkout.sessions.retrieve(session?.id, { expand: ["subscription"] }),
  (s) => (s.status !== "complete" ? `status ${s.status}` : s.subscription?.status !== "active" ? `subscription ${s.subscription?.status}` : ""));
const sub = paid?.subscription;
const periodEnd = sub?.items?.data?.[0]?.current_period_end;

// The clock, through the control route.
const clock = await check("read the clock", () => raw("GET", "/_billingtest/clock"),
  (c) => (c.object !== "billingtest.clock" ? `object ${c.object}` : c.next_event === null ? "nothing scheduled after a subscription" : ""));
const adv = await check("advance 31d", () => raw("POST", "/_billingtest/clock/advance", { by: "31d" }),
  (a) => (a.object !== "billingtest.clock_advance" ? `object ${a.object}` : a.now - a.from < 31 * 86400 - 2 ? `moved ${a.now - a.from}s` : ""));
const renewal = adv?.events?.find((e) => e.type === "invoice.paid" && e.data.object.billing_reason === "subscription_cycle");
calls++;
if (!renewal) fail(`no renewal invoice.paid among ${adv?.events?.map((e) => e.type).join(", ")}`);
else if (renewal.created < periodEnd) fail(`renewal paid at ${renewal.created}, before the period's end ${periodEnd}`);
else if (renewal.data.object.parent?.subscription_details?.subscription !== sub?.id) fail("renewal of another subscription");
calls++;
if (clock && adv && adv.from < clock.now) fail(`the clock went back: ${adv.from} < ${clock.now}`);

// The control route's errors are Stripe's: the SDK raises its classes.
calls++;
try {
  await raw("POST", "/_billingtest/clock/advance", { by: "a month" });
  fail("advance by 'a month' succeeded");
} catch (e) {
  if (e.type !== "StripeInvalidRequestError" || e.statusCode !== 400 || e.code !== "parameter_invalid" || e.param !== "by") {
    fail(`advance by 'a month': ${e.type} ${e.statusCode} ${e.code} ${e.param}`);
  }
}

// The renewal, as the API lists and retrieves it (the first payment's
// event is 31 days old: past the 30 days /v1/events keeps).
await check("list invoice.paid", async () => {
  const out = [];
  for await (const e of stripe.events.list({ type: "invoice.paid", limit: 1 })) out.push(e);
  return out;
}, (evs) => (evs.length !== 1 || evs[0].id !== renewal?.id ? `${evs.map((e) => e.id)}, want the renewal's ${renewal?.id}` : ""));
await check("retrieve subscription", () => stripe.subscriptions.retrieve(sub?.id),
  (s) => (s.status !== "active" ? `status ${s.status}` : s.items.data[0].current_period_start !== periodEnd ? `period starts ${s.items.data[0].current_period_start}, want ${periodEnd}` : ""));

process.stdout.write(JSON.stringify({ calls, failures, subscription: sub?.id ?? "", customer: customer?.id ?? "" }));
