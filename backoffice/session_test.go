package backoffice

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A session lasts sessionTTL, carries the name it was opened with, and is valid under any of
// the server's tokens (rotation) but no other.
func TestSessionsExpireAndNeedOneOfTheTokens(t *testing.T) {
	a, err := New(Options{Tokens: []string{"first-token-0123456789abcdef01234567", "second-token-0123456789abcdef0123456"}})
	require.NoError(t, err)
	other, err := New(Options{Tokens: []string{"other-token-0123456789abcdef01234567"}})
	require.NoError(t, err)
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	req := httptest.NewRequest("GET", "/ui/", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: a.newSession(1, "Grace Hopper", now)})

	name, ok := a.session(req, now.Add(sessionTTL-time.Second))
	require.True(t, ok)
	require.Equal(t, "Grace Hopper", name)
	_, ok = a.session(req, now.Add(sessionTTL))
	require.False(t, ok, "expired")
	_, ok = other.session(req, now)
	require.False(t, ok, "signed with a token the server does not have")
	require.Equal(t, 1, a.tokenIndex(" second-token-0123456789abcdef0123456 "))
	require.Equal(t, -1, a.tokenIndex(""))
	require.Equal(t, -1, a.tokenIndex("second-token"))
}
