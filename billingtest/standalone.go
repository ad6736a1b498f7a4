package billingtest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
)

// Listen starts an offline Stripe on addr (host:port; port 0 picks a free
// one), as [New] does with [Options].Listener set: a standalone server
// that apps in any language reach over HTTP (see the package doc's
// "Standalone server"). [Stripe.URL] returns the address it listens on,
// e.g. http://127.0.0.1:12111. Call [Stripe.Close] when done.
func Listen(addr string, opts Options) (*Stripe, error) {
	if opts.Listener != nil {
		return nil, fmt.Errorf("billingtest: Listen with Options.Listener set: use New")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("billingtest: %w", err)
	}
	opts.Listener = l
	return New(opts), nil
}

// serve starts serving h on l, or on a new random loopback port when l is
// nil.
func serve(h http.Handler, l net.Listener) *httptest.Server {
	if l == nil {
		return httptest.NewServer(h)
	}
	ts := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	ts.Start()
	return ts
}
