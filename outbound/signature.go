// Package outbound is kombosync's side of the webhooks it sends to the application, by the
// Standard Webhooks specification: each delivery carries webhook-id (stable across retries: the
// receiver's dedupe key), webhook-timestamp (Unix seconds) and webhook-signature ("v1," and the
// base64 HMAC-SHA256 of "id.timestamp.body" under each of the subscription's secrets, space
// separated, so a receiver rotating its secret accepts either).
package outbound

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts a signing secret: "whsec_" and the base64 of its key.
const SecretPrefix = "whsec_"

// Headers of a delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// ParseSecret reads a "whsec_…" secret into its key (24 to 64 bytes, as the specification
// recommends).
func ParseSecret(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(secret), SecretPrefix)
	if !ok {
		return nil, errors.New("a signing secret starts with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("a signing secret is whsec_ and standard base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("a signing secret's key is 24 to 64 bytes, not %d", len(key))
	}
	return key, nil
}

// Sign is the v1 signature of one delivery under one key.
func Sign(key []byte, id string, at time.Time, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(at.Unix(), 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SetHeaders sets a delivery's webhook-id, webhook-timestamp and webhook-signature (one
// signature per key).
func SetHeaders(h http.Header, keys [][]byte, id string, at time.Time, body []byte) {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		sigs[i] = Sign(k, id, at, body)
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
}
