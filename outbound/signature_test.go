package outbound_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/outbound"
)

// The specification's published example (standardwebhooks.com, and the test suites of its
// reference libraries): this secret, id, timestamp and body sign to this signature.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignMatchesTheSpecificationsExample(t *testing.T) {
	key, err := outbound.ParseSecret(vectorSecret)
	require.NoError(t, err)
	require.Equal(t, vectorSignature, outbound.Sign(key, vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody)))

	other, err := outbound.ParseSecret("whsec_" + strings.Repeat("A", 32))
	require.NoError(t, err)
	h := http.Header{}
	outbound.SetHeaders(h, [][]byte{key, other}, vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody))
	require.Equal(t, vectorID, h.Get("webhook-id"))
	require.Equal(t, "1614265330", h.Get("webhook-timestamp"))
	sigs := strings.Split(h.Get("webhook-signature"), " ")
	require.Len(t, sigs, 2, "one signature per secret, for rotation")
	require.Equal(t, vectorSignature, sigs[0])
}

func TestParseSecretRefusesWhatIsNotOne(t *testing.T) {
	for secret, want := range map[string]string{
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw":       "starts with whsec_",
		"whsec_not base64!":                      "standard base64",
		"whsec_" + strings.Repeat("A", 8):        "24 to 64 bytes",
		"whsec_" + strings.Repeat("A", 4*23+100): "24 to 64 bytes",
	} {
		_, err := outbound.ParseSecret(secret)
		require.ErrorContains(t, err, want, secret)
	}
}
