package billingtest

// deliveryRoutes registers the webhook endpoint API.
func (s *Stripe) deliveryRoutes() {}

// publish hands a new event to delivery. It is called with s.mu held and
// must not block.
func (s *Stripe) publish(ev Event) {}
