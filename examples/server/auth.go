package main

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/gobilling/billing"
)

// sessionCookie holds the session token.
const sessionCookie = "session"

type sessionKey struct{}

// sessionFrom returns the signed-in user's session, if any.
func sessionFrom(ctx context.Context) (session, bool) {
	s, ok := ctx.Value(sessionKey{}).(session)
	return s, ok
}

// withSession finds the session of the request's cookie and puts it in
// the context, with the user's ID for billing (billing.WithUserID: how
// billing.UserResolverFunc answers RequestUser).
func (a *app) withSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		s, err := a.users.session(r.Context(), c.Value)
		switch {
		case errors.Is(err, sql.ErrNoRows): // expired, or signed out
			a.setSessionCookie(w, "")
		case err != nil:
			a.log.Error("read session", "error", err.Error())
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		default:
			ctx := context.WithValue(r.Context(), sessionKey{}, s)
			r = r.WithContext(billing.WithUserID(ctx, s.User.ID))
		}
		next.ServeHTTP(w, r)
	})
}

// setSessionCookie sets the session cookie, or deletes it for "".
func (a *app) setSessionCookie(w http.ResponseWriter, token string) {
	c := &http.Cookie{
		Name:     sessionCookie,
		Value:    token,
		Path:     "/",
		MaxAge:   int(sessionLifetime.Seconds()),
		HttpOnly: true,
		Secure:   a.secureCookies,
		SameSite: http.SameSiteLaxMode,
	}
	if token == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// signedIn sends visitors to the sign-in page, and back here afterwards.
func (a *app) signedIn(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := sessionFrom(r.Context()); !ok {
			next := "/account"
			if r.Method == http.MethodGet {
				next = r.URL.RequestURI()
			}
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		h(w, r)
	})
}

// signedInForm is signedIn for a POST form: it parses the form and checks
// the session's CSRF token, which every signed-in form carries in a hidden
// "csrf" field.
func (a *app) signedInForm(h http.HandlerFunc) http.Handler {
	return a.signedIn(func(w http.ResponseWriter, r *http.Request) {
		if a.checkForm(w, r) {
			h(w, r)
		}
	})
}

// checkForm parses the POST form of a signed-in user and checks its CSRF
// token, answering 400 or 403 if it fails.
func (a *app) checkForm(w http.ResponseWriter, r *http.Request) bool {
	if !a.parseForm(w, r) {
		return false
	}
	s, _ := sessionFrom(r.Context())
	if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.CSRF)) != 1 {
		a.renderError(w, r, http.StatusForbidden, "Form expired",
			"This form is out of date (you may have signed out and in since). Reload the page and try again.")
		return false
	}
	return true
}

// maxFormBytes bounds a form's body.
const maxFormBytes = 64 << 10

// parseForm parses a POST form, answering 400 if it cannot.
func (a *app) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		a.renderError(w, r, http.StatusBadRequest, "Bad request", "The form could not be read. Reload the page and try again.")
		return false
	}
	return true
}

// authView is the data of the sign-up and sign-in pages.
type authView struct {
	Email  string
	Next   string
	Errors []string
}

func (a *app) signupPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "signup", "Sign up", authView{Next: safePath(r.URL.Query().Get("next"))})
}

func (a *app) signinPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "signin", "Sign in", authView{Next: safePath(r.URL.Query().Get("next"))})
}

// validateSignup checks the sign-up form and returns the normalized email
// and what is wrong, in words for the user.
func validateSignup(email, password, confirm string) (string, []string) {
	email = strings.ToLower(strings.TrimSpace(email))
	var problems []string
	if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email || len(email) > 254 {
		problems = append(problems, "Enter a valid email address, such as ada@example.com.")
	}
	switch {
	case utf8.RuneCountInString(password) < minPasswordLen:
		problems = append(problems, "Choose a password of at least 8 characters.")
	case len(password) > maxPasswordBytes:
		problems = append(problems, "Choose a password of at most 72 bytes (72 letters without accents).")
	case password != confirm:
		problems = append(problems, "The two passwords differ: type the same password twice.")
	}
	return email, problems
}

func (a *app) signup(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	v := authView{Email: r.PostFormValue("email"), Next: safePath(r.PostFormValue("next"))}
	email, problems := validateSignup(v.Email, r.PostFormValue("password"), r.PostFormValue("confirm"))
	if len(problems) > 0 {
		v.Errors = problems
		a.render(w, r, http.StatusUnprocessableEntity, "signup", "Sign up", v)
		return
	}
	u, err := a.users.create(r.Context(), email, r.PostFormValue("password"))
	if errors.Is(err, errEmailTaken) {
		v.Errors = []string{"An account with this email already exists: sign in instead."}
		a.render(w, r, http.StatusUnprocessableEntity, "signup", "Sign up", v)
		return
	}
	if err != nil {
		a.log.Error("sign up", "error", err.Error())
		a.renderError(w, r, http.StatusInternalServerError, "Sign-up failed", "Your account could not be created. Please try again.")
		return
	}
	a.log.Info("user signed up", "user", u.ID)
	next := v.Next
	if next == "" {
		next = "/pricing?msg=welcome"
	}
	a.startSession(w, r, u, next)
}

func (a *app) signin(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	v := authView{Email: r.PostFormValue("email"), Next: safePath(r.PostFormValue("next"))}
	email, password := strings.ToLower(strings.TrimSpace(v.Email)), r.PostFormValue("password")
	if email == "" || password == "" {
		v.Errors = []string{"Enter your email and your password."}
		a.render(w, r, http.StatusUnprocessableEntity, "signin", "Sign in", v)
		return
	}
	u, err := a.users.authenticate(r.Context(), email, password)
	if errors.Is(err, errBadCredentials) {
		v.Errors = []string{"Wrong email or password."}
		a.render(w, r, http.StatusUnauthorized, "signin", "Sign in", v)
		return
	}
	if err != nil {
		a.log.Error("sign in", "error", err.Error())
		a.renderError(w, r, http.StatusInternalServerError, "Sign-in failed", "Please try again.")
		return
	}
	next := v.Next
	if next == "" {
		next = "/account"
	}
	a.startSession(w, r, u, next)
}

// startSession signs the user in and redirects to next.
func (a *app) startSession(w http.ResponseWriter, r *http.Request, u user, next string) {
	token, err := a.users.startSession(r.Context(), u.ID)
	if err != nil {
		a.log.Error("start session", "error", err.Error())
		a.renderError(w, r, http.StatusInternalServerError, "Sign-in failed", "Please try again.")
		return
	}
	a.setSessionCookie(w, token)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (a *app) signout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := a.users.endSession(r.Context(), c.Value); err != nil {
			a.log.Error("sign out", "error", err.Error())
		}
	}
	a.setSessionCookie(w, "")
	http.Redirect(w, r, "/?msg=signed-out", http.StatusSeeOther)
}
