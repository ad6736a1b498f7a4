package billingtest

import (
	"fmt"
	"net/http"
)

// pageRoutes registers the hosted Checkout and portal pages the sessions'
// URLs point at. They are not counted as API calls.
func (s *Stripe) pageRoutes() {
	page := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>billingtest</title><p>%s</p>\n", r.PathValue("id"))
	}
	s.mux.HandleFunc("GET /pay/{id}", page)
	s.mux.HandleFunc("GET /portal/{id}", page)
}
