package kombo

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// SignatureHeader carries a webhook's signature.
const SignatureHeader = "X-Kombo-Signature"

// Webhook event types.
const (
	EventDataChanged             = "data-changed"
	EventSyncFinished            = "sync-finished"
	EventRemoteEventReceived     = "remote-event-received"
	EventIntegrationCreated      = "integration-created"
	EventIntegrationDeleted      = "integration-deleted"
	EventIntegrationStateChanged = "integration-state-changed"
	EventConnectionFlowFailed    = "connection-flow-failed"
)

// Sync states of sync-finished. The field is a free string: expect others.
const (
	SyncSucceeded            = "SUCCEEDED"
	SyncPartiallyFailed      = "PARTIALLY_FAILED"
	SyncCancelled            = "CANCELLED"
	SyncFailed               = "FAILED"
	SyncTimedOut             = "TIMED_OUT"
	SyncAuthenticationFailed = "AUTHENTICATION_FAILED"
)

// Integration states of integration-state-changed.
const (
	IntegrationActive   = "ACTIVE"
	IntegrationInvalid  = "INVALID"
	IntegrationInactive = "INACTIVE"
)

// Sign returns the X-Kombo-Signature of body: base64url without padding of
// HMAC-SHA256(secret, body).
func Sign(secret string, body []byte) string {
	return base64.RawURLEncoding.EncodeToString(mac(secret, body))
}

func mac(secret string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write(body)
	return h.Sum(nil)
}

// Verify reports whether signature is a valid X-Kombo-Signature of the raw body under any of
// the secrets (several during a rotation). The comparison is constant-time, and every secret is
// tried, so the time taken does not tell which one matched. Any other encoding of the MAC
// (padding, standard base64) is rejected.
func Verify(body []byte, signature string, secrets ...string) bool {
	got, err := base64.RawURLEncoding.Strict().DecodeString(signature)
	// Only the canonical encoding: Go's decoders skip \r and \n anywhere, so a signature with a
	// line break inside would otherwise verify (found by FuzzVerify).
	if err != nil || len(got) != sha256.Size || base64.RawURLEncoding.EncodeToString(got) != signature {
		return false
	}
	ok := false
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if hmac.Equal(got, mac(s, body)) {
			ok = true
		}
	}
	return ok
}

// Event is a webhook's envelope: {"id", "type", "data"}. Data stays raw until Payload decodes it
// by type, so unknown types are kept, not lost.
type Event struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`

	payload any // decoded once by ParseEvent; Payload and IntegrationID reuse it
}

// ErrMalformedEvent is wrapped by ParseEvent's errors: the body is not a webhook envelope.
var ErrMalformedEvent = errors.New("malformed webhook event")

// ParseEvent decodes a webhook body and checks the envelope's required fields, and the fields a
// known type needs to be acted on (an integration id, for instance).
func ParseEvent(body []byte) (Event, error) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&e); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrMalformedEvent, err)
	}
	if len(bytes.Trim(body[dec.InputOffset():], " \t\r\n")) > 0 {
		return Event{}, fmt.Errorf("%w: trailing data after the JSON object", ErrMalformedEvent)
	}
	switch {
	case e.ID == "":
		return Event{}, fmt.Errorf("%w: id is required", ErrMalformedEvent)
	case e.Type == "":
		return Event{}, fmt.Errorf("%w: type is required", ErrMalformedEvent)
	case len(e.Data) == 0 || bytes.Equal(e.Data, []byte("null")):
		return Event{}, fmt.Errorf("%w: data is required", ErrMalformedEvent)
	}
	if err := storable(body); err != nil {
		// Valid JSON to Go, but not to PostgreSQL's jsonb: such an event could never be stored, and
		// answering 503 would make Kombo retry it forever.
		return Event{}, fmt.Errorf("%w: %v", ErrMalformedEvent, err)
	}
	p, err := e.Payload()
	if err != nil {
		return Event{}, err
	}
	if v, ok := p.(interface{ validate() error }); ok {
		if err := v.validate(); err != nil {
			return Event{}, fmt.Errorf("%w: %s: %v", ErrMalformedEvent, e.Type, err)
		}
	}
	e.payload = p
	return e, nil
}

// errHalfSurrogate: a \u escape of a surrogate that is not one half of a pair.
var errHalfSurrogate = errors.New(`a \u escape holds half a surrogate pair`)

// storable checks what Go's JSON decoder forgives but PostgreSQL's jsonb refuses: bytes that are
// not UTF-8, the escape \u0000, and a \u escape of half a surrogate pair. The body has been
// decoded already, so every escape is complete and its hex digits valid.
func storable(body []byte) error {
	if !utf8.Valid(body) {
		return errors.New("the body is not valid UTF-8")
	}
	high := false // the previous character was a \u escape of a high surrogate
	for i := 0; i < len(body); i++ {
		var r uint64 = utf8.RuneError // anything but a surrogate
		if body[i] == '\\' {
			i++ // the escaped character, a backslash included, starts nothing
			if body[i] == 'u' {
				r, _ = strconv.ParseUint(string(body[i+1:i+5]), 16, 16)
				i += 4
			}
		}
		isLow := r >= 0xDC00 && r <= 0xDFFF
		switch {
		case r == 0:
			return errors.New(`a string holds \u0000`)
		case high != isLow:
			return errHalfSurrogate
		}
		high = r >= 0xD800 && r <= 0xDBFF
	}
	if high {
		return errHalfSurrogate
	}
	return nil
}

// Payload decodes Data by Type into one of the payload types below; an unknown type yields
// UnknownPayload. An event from ParseEvent returns the payload it already decoded.
func (e Event) Payload() (any, error) {
	if e.payload != nil {
		return e.payload, nil
	}
	var p any
	switch e.Type {
	case EventDataChanged:
		p = &DataChanged{}
	case EventSyncFinished:
		p = &SyncFinished{}
	case EventRemoteEventReceived:
		p = &RemoteEventReceived{}
	case EventIntegrationCreated:
		p = &IntegrationCreated{}
	case EventIntegrationDeleted:
		p = &IntegrationDeleted{}
	case EventIntegrationStateChanged:
		p = &IntegrationStateChanged{}
	case EventConnectionFlowFailed:
		p = &ConnectionFlowFailed{}
	default:
		return UnknownPayload{Type: e.Type, Data: e.Data}, nil
	}
	if err := json.Unmarshal(e.Data, p); err != nil {
		return nil, fmt.Errorf("%w: %s data: %v", ErrMalformedEvent, e.Type, err)
	}
	return p, nil
}

// IntegrationID is the integration an event is about, or "" (connection-flow-failed, unknown).
func (e Event) IntegrationID() string {
	p, err := e.Payload()
	if err != nil {
		return ""
	}
	switch p := p.(type) {
	case *DataChanged:
		return p.IntegrationID
	case *SyncFinished:
		return p.IntegrationID
	case *RemoteEventReceived:
		return p.IntegrationID
	case *IntegrationCreated:
		return p.ID
	case *IntegrationDeleted:
		return p.ID
	case *IntegrationStateChanged:
		return p.IntegrationID
	}
	return ""
}

// EndUser is the customer an integration belongs to.
type EndUser struct {
	OrganizationName string  `json:"organization_name"`
	CreatorEmail     *string `json:"creator_email"`
	OriginID         *string `json:"origin_id"`
}

// ChangedModel names one Kombo model ("hris_employees") in a data-changed event.
type ChangedModel struct {
	Name string `json:"name"`
}

// DataChanged: models of an integration changed since the previous data-changed.
type DataChanged struct {
	IntegrationID       string         `json:"integration_id"`
	IntegrationTool     string         `json:"integration_tool"`
	IntegrationCategory string         `json:"integration_category"`
	ChangedModels       []ChangedModel `json:"changed_models"`
}

func (p *DataChanged) validate() error {
	if p.IntegrationID == "" {
		return errors.New("integration_id is required")
	}
	for i, m := range p.ChangedModels {
		if m.Name == "" {
			return fmt.Errorf("changed_models[%d].name is required", i)
		}
	}
	return nil
}

// SyncFinished: one of Kombo's syncs of an integration ended in SyncState.
type SyncFinished struct {
	SyncID              string     `json:"sync_id"`
	SyncState           string     `json:"sync_state"`
	SyncStartedAt       *time.Time `json:"sync_started_at"`
	SyncEndedAt         *time.Time `json:"sync_ended_at"`
	SyncDurationSeconds *float64   `json:"sync_duration_seconds"`
	IntegrationID       string     `json:"integration_id"`
	IntegrationTool     string     `json:"integration_tool"`
	IntegrationCategory string     `json:"integration_category"`
	EndUser             *EndUser   `json:"end_user"`
	LogURL              string     `json:"log_url"`
}

func (p *SyncFinished) validate() error {
	if p.IntegrationID == "" {
		return errors.New("integration_id is required")
	}
	if p.SyncState == "" {
		return errors.New("sync_state is required")
	}
	return nil
}

// RemoteEventReceived is the legacy "the tool sent Kombo a webhook" event; its payload is not
// published beyond integration_id, so the rest is kept raw.
type RemoteEventReceived struct {
	IntegrationID       string `json:"integration_id"`
	IntegrationTool     string `json:"integration_tool"`
	IntegrationCategory string `json:"integration_category"`
}

func (p *RemoteEventReceived) validate() error {
	if p.IntegrationID == "" {
		return errors.New("integration_id is required")
	}
	return nil
}

// IntegrationCreated: a customer connected a tool.
type IntegrationCreated struct {
	ID       string   `json:"id"`
	Tool     string   `json:"tool"`
	Category string   `json:"category"`
	EndUser  *EndUser `json:"end_user"`
}

func (p *IntegrationCreated) validate() error {
	if p.ID == "" {
		return errors.New("id is required")
	}
	return nil
}

// IntegrationDeleted: an integration was deleted; Kombo removes its data 14 days later.
type IntegrationDeleted struct {
	ID        string     `json:"id"`
	Tool      string     `json:"tool"`
	Category  string     `json:"category"`
	EndUser   *EndUser   `json:"end_user"`
	DeletedAt *time.Time `json:"deleted_at"`
}

func (p *IntegrationDeleted) validate() error {
	if p.ID == "" {
		return errors.New("id is required")
	}
	return nil
}

// IntegrationStateChanged: an integration became ACTIVE, INVALID or INACTIVE.
type IntegrationStateChanged struct {
	IntegrationID       string     `json:"integration_id"`
	IntegrationTool     string     `json:"integration_tool"`
	IntegrationCategory string     `json:"integration_category"`
	EndUser             *EndUser   `json:"end_user"`
	QAStatus            string     `json:"qa_status"`
	SetupStatus         string     `json:"setup_status"`
	State               string     `json:"state"`
	UpdatedAt           *time.Time `json:"updated_at"`
}

func (p *IntegrationStateChanged) validate() error {
	if p.IntegrationID == "" {
		return errors.New("integration_id is required")
	}
	if p.State == "" {
		return errors.New("state is required")
	}
	return nil
}

// ConnectionFlowFailed: a customer's connection attempt failed; there is no integration yet.
type ConnectionFlowFailed struct {
	IntegrationTool     string   `json:"integration_tool"`
	IntegrationCategory string   `json:"integration_category"`
	EndUser             *EndUser `json:"end_user"`
	LogURL              string   `json:"log_url"`
}

// UnknownPayload is the data of an event type this client does not know, kept as received.
type UnknownPayload struct {
	Type string
	Data json.RawMessage
}
