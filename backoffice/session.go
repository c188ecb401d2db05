package backoffice

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The page's sign-in. A browser cannot send the API's bearer header on a navigation, so the page
// asks for a token once (a form) and keeps a signed session cookie: its expiry and the person's
// name, signed with HMAC-SHA256 keyed by the token's digest. The token itself never sits in the
// browser; removing a token from API_TOKENS ends the sessions it opened. The cookie is HttpOnly
// and SameSite=Strict, and every form is behind net/http's CrossOriginProtection (CSRF).

const (
	sessionCookie = "kombosync_session"
	sessionTTL    = 12 * time.Hour
	maxNameLen    = 100
)

// tokenIndex is the index of the token among API_TOKENS, or -1: compared as SHA-256 digests in
// constant time, whatever their lengths.
func (a *API) tokenIndex(token string) int {
	token = strings.TrimSpace(token)
	if token == "" {
		return -1
	}
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i, t := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], t[:]) == 1 {
			found = i
		}
	}
	return found
}

// signSession is the signature of a session's expiry and name under one token.
func signSession(key [32]byte, expires, name string) string {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte("kombosync-backoffice-session\x00" + expires + "\x00" + name))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// newSession is a session cookie's value for the token at index i.
func (a *API) newSession(i int, name string, now time.Time) string {
	exp := strconv.FormatInt(now.Add(sessionTTL).Unix(), 10)
	n := base64.RawURLEncoding.EncodeToString([]byte(name))
	return exp + "." + n + "." + signSession(a.tokens[i], exp, n)
}

// session is the signed-in person's name, when the request carries a valid, unexpired session.
func (a *API) session(r *http.Request, now time.Time) (string, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", false
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 {
		return "", false
	}
	exp, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || now.Unix() >= exp {
		return "", false
	}
	valid := false
	for _, key := range a.tokens {
		valid = hmac.Equal([]byte(signSession(key, parts[0], parts[1])), []byte(parts[2])) || valid
	}
	name, err := base64.RawURLEncoding.DecodeString(parts[1])
	if !valid || err != nil {
		return "", false
	}
	return string(name), true
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/ui/", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"})
}

// checkName says what is wrong with a person's name for the decisions they record, or "".
func checkName(name string) string {
	switch {
	case name == "":
		return "your name is required: it is recorded on the links you confirm or reject"
	case len(name) > maxNameLen:
		return "your name: at most 100 characters"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "your name: no control characters"
	}
	return ""
}

func (a *API) loginPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, http.StatusOK, "login.html", loginView{Next: safeNext(r.URL.Query().Get("next"))})
}

type loginView struct {
	Next, Name, Error string
}

func (a *API) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		a.render(w, http.StatusBadRequest, "login.html", loginView{Error: "the form could not be read"})
		return
	}
	v := loginView{Next: safeNext(r.PostForm.Get("next")), Name: strings.TrimSpace(r.PostForm.Get("name"))}
	i := a.tokenIndex(r.PostForm.Get("token"))
	if i < 0 {
		v.Error = "that is not one of this server's API tokens"
		a.render(w, http.StatusUnauthorized, "login.html", v)
		return
	}
	if v.Error = checkName(v.Name); v.Error != "" {
		a.render(w, http.StatusBadRequest, "login.html", v)
		return
	}
	setCookie(w, r, sessionCookie, a.newSession(i, v.Name, time.Now()), int(sessionTTL.Seconds()))
	http.Redirect(w, r, v.Next, http.StatusSeeOther)
}

func (a *API) logout(w http.ResponseWriter, r *http.Request) {
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// safeNext keeps a sign-in's return path on this server's pages.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}
