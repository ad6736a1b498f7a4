package billing

import (
	"context"
	"errors"
	"net/http"
)

type membershipKey struct{}

// RequireMember returns middleware that lets through only users whose
// membership is active now, and, when tiers are given, of one of those
// tiers. It finds the user with the UserResolver's RequestUser: no user
// is answered 401, a user without access 403, a failure to read the store
// 500. The membership rides in the request's context for the next handler
// ([MembershipFrom]).
func (b *Billing) RequireMember(tiers ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			userID, err := b.users.RequestUser(r)
			if err != nil || userID == "" {
				if err != nil && !errors.Is(err, ErrNoUser) {
					b.log.Error("resolve request user", "error", err.Error())
					http.Error(w, "internal error", http.StatusInternalServerError)
					return
				}
				http.Error(w, "sign in required", http.StatusUnauthorized)
				return
			}
			m, err := b.Membership(r.Context(), userID)
			if err != nil {
				b.log.Error("read membership", "user", userID, "error", err.Error())
				http.Error(w, "internal error", http.StatusInternalServerError)
				return
			}
			if !m.HasTier(b.now(), tiers...) {
				http.Error(w, "membership required", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), membershipKey{}, m)))
		})
	}
}

// MembershipFrom returns the membership RequireMember put in the context.
func MembershipFrom(ctx context.Context) (Membership, bool) {
	m, ok := ctx.Value(membershipKey{}).(Membership)
	return m, ok
}
