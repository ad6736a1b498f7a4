package billingtest

// validParams are the top-level parameters Stripe's API accepts on each
// route billingtest serves (from Stripe's OpenAPI schema for basil;
// TestValidParamsAreStripes keeps it in step with stripe-mock's spec3.json).
// A request with one billingtest does not model is refused as valid at
// Stripe but not modelled, never as unknown.
var validParams = map[string][]string{
	"POST /v1/disputes/{id}":                       {"evidence", "metadata", "submit"},
	"POST /v1/prices/{id}":                         {"active", "currency_options", "lookup_key", "metadata", "nickname", "tax_behavior", "transfer_lookup_key"},
	"POST /v1/products/{id}":                       {"active", "default_price", "description", "images", "marketing_features", "metadata", "name", "package_dimensions", "shippable", "statement_descriptor", "tax_code", "unit_label", "url"},
	"POST /v1/refunds":                             {"amount", "charge", "currency", "customer", "instructions_email", "metadata", "origin", "payment_intent", "reason", "refund_application_fee", "reverse_transfer"},
	"DELETE /v1/subscriptions/{id}":                {"cancellation_details", "invoice_now", "prorate"},
	"GET /v1/checkout/sessions":                    {"created", "customer", "customer_details", "ending_before", "limit", "payment_intent", "payment_link", "starting_after", "status", "subscription"},
	"GET /v1/checkout/sessions/{id}/line_items":    {"ending_before", "limit", "starting_after"},
	"GET /v1/customers":                            {"created", "email", "ending_before", "limit", "starting_after", "test_clock"},
	"GET /v1/disputes":                             {"charge", "created", "ending_before", "limit", "payment_intent", "starting_after"},
	"GET /v1/refunds":                              {"charge", "created", "ending_before", "limit", "payment_intent", "starting_after"},
	"GET /v1/events":                               {"created", "delivery_success", "ending_before", "limit", "starting_after", "type", "types"},
	"GET /v1/invoice_payments":                     {"ending_before", "invoice", "limit", "payment", "starting_after", "status"},
	"GET /v1/invoices":                             {"collection_method", "created", "customer", "due_date", "ending_before", "limit", "starting_after", "status", "subscription"},
	"GET /v1/payment_intents/{id}":                 {"client_secret"},
	"GET /v1/prices":                               {"active", "created", "currency", "ending_before", "limit", "lookup_keys", "product", "recurring", "starting_after", "type"},
	"GET /v1/products":                             {"active", "created", "ending_before", "ids", "limit", "shippable", "starting_after", "url"},
	"GET /v1/subscriptions":                        {"automatic_tax", "collection_method", "created", "current_period_end", "current_period_start", "customer", "ending_before", "limit", "price", "starting_after", "status", "test_clock"},
	"GET /v1/webhook_endpoints":                    {"ending_before", "limit", "starting_after"},
	"GET /v1/billing_portal/configurations":        {"active", "ending_before", "is_default", "limit", "starting_after"},
	"POST /v1/billing_portal/configurations":       {"business_profile", "default_return_url", "features", "login_page", "metadata"},
	"POST /v1/billing_portal/configurations/{id}":  {"active", "business_profile", "default_return_url", "features", "login_page", "metadata"},
	"POST /v1/billing_portal/sessions":             {"configuration", "customer", "flow_data", "locale", "on_behalf_of", "return_url"},
	"POST /v1/checkout/sessions":                   {"adaptive_pricing", "after_expiration", "allow_promotion_codes", "automatic_tax", "billing_address_collection", "cancel_url", "client_reference_id", "consent_collection", "currency", "custom_fields", "custom_text", "customer", "customer_creation", "customer_email", "customer_update", "discounts", "expires_at", "invoice_creation", "line_items", "locale", "metadata", "mode", "optional_items", "payment_intent_data", "payment_method_collection", "payment_method_configuration", "payment_method_data", "payment_method_options", "payment_method_types", "permissions", "phone_number_collection", "redirect_on_completion", "return_url", "saved_payment_method_options", "setup_intent_data", "shipping_address_collection", "shipping_options", "submit_type", "subscription_data", "success_url", "tax_id_collection", "ui_mode", "wallet_options"},
	"POST /v1/customers":                           {"address", "balance", "cash_balance", "description", "email", "invoice_prefix", "invoice_settings", "metadata", "name", "next_invoice_sequence", "payment_method", "phone", "preferred_locales", "shipping", "source", "tax", "tax_exempt", "tax_id_data", "test_clock"},
	"POST /v1/customers/{id}":                      {"address", "balance", "bank_account", "card", "cash_balance", "default_alipay_account", "default_bank_account", "default_card", "default_source", "description", "email", "invoice_prefix", "invoice_settings", "metadata", "name", "next_invoice_sequence", "phone", "preferred_locales", "shipping", "source", "tax", "tax_exempt"},
	"POST /v1/invoices/create_preview":             {"automatic_tax", "currency", "customer", "customer_details", "discounts", "invoice_items", "issuer", "on_behalf_of", "preview_mode", "schedule", "schedule_details", "subscription", "subscription_details"},
	"POST /v1/prices":                              {"active", "billing_scheme", "currency", "currency_options", "custom_unit_amount", "lookup_key", "metadata", "nickname", "product", "product_data", "recurring", "tax_behavior", "tiers", "tiers_mode", "transfer_lookup_key", "transform_quantity", "unit_amount", "unit_amount_decimal"},
	"POST /v1/products":                            {"active", "default_price_data", "description", "id", "images", "marketing_features", "metadata", "name", "package_dimensions", "shippable", "statement_descriptor", "tax_code", "unit_label", "url"},
	"POST /v1/subscription_schedules":              {"customer", "default_settings", "end_behavior", "from_subscription", "metadata", "phases", "start_date"},
	"POST /v1/subscription_schedules/{id}":         {"default_settings", "end_behavior", "metadata", "phases", "proration_behavior"},
	"POST /v1/subscription_schedules/{id}/cancel":  {"invoice_now", "prorate"},
	"POST /v1/subscription_schedules/{id}/release": {"preserve_cancel_date"},
	"POST /v1/subscriptions":                       {"add_invoice_items", "application_fee_percent", "automatic_tax", "backdate_start_date", "billing_cycle_anchor", "billing_cycle_anchor_config", "cancel_at", "cancel_at_period_end", "collection_method", "currency", "customer", "days_until_due", "default_payment_method", "default_source", "default_tax_rates", "description", "discounts", "invoice_settings", "items", "metadata", "off_session", "on_behalf_of", "payment_behavior", "payment_settings", "pending_invoice_item_interval", "proration_behavior", "transfer_data", "trial_end", "trial_from_plan", "trial_period_days", "trial_settings"},
	"POST /v1/subscriptions/{id}":                  {"add_invoice_items", "application_fee_percent", "automatic_tax", "billing_cycle_anchor", "cancel_at", "cancel_at_period_end", "cancellation_details", "collection_method", "days_until_due", "default_payment_method", "default_source", "default_tax_rates", "description", "discounts", "invoice_settings", "items", "metadata", "off_session", "on_behalf_of", "pause_collection", "payment_behavior", "payment_settings", "pending_invoice_item_interval", "proration_behavior", "proration_date", "transfer_data", "trial_end", "trial_from_plan", "trial_settings"},
	"POST /v1/subscriptions/{id}/resume":           {"billing_cycle_anchor", "proration_behavior", "proration_date"},
	"POST /v1/webhook_endpoints":                   {"api_version", "connect", "description", "enabled_events", "metadata", "url"},
	"POST /v1/webhook_endpoints/{id}":              {"description", "disabled", "enabled_events", "metadata", "url"},
}
