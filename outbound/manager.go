package outbound

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/kombosync/kombosync/store"
)

// NewSecret returns a new signing secret: whsec_ and 32 random bytes in base64.
func NewSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// Manager is how subscriptions are managed, by the back-office API and the starter alike: it
// checks what the store does not (the URL against the delivery rules, the secret's form), and
// wakes the subscription's delivery workflow after a change it must act on. Errors wrap
// store.ErrInvalid (a bad request) or store.ErrNotFound.
type Manager struct {
	Store  *store.Store
	Client *Client // its CheckURL rules: https, public addresses, unless allowed
	// Wake signals the subscription's delivery workflow (workflows.WakeSubscription); now ends a
	// back-off wait.
	Wake func(ctx context.Context, subscriptionID string, now bool, reason string) error
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", store.ErrInvalid, fmt.Sprintf(format, args...))
}

// Create adds a subscription, with a new secret unless one is given, and returns it and its
// secret (shown once; the store keeps it to sign).
func (m *Manager) Create(ctx context.Context, spec store.SubscriptionSpec) (store.Subscription, string, error) {
	spec.URL = strings.TrimSpace(spec.URL)
	if err := m.Client.CheckURL(spec.URL); err != nil {
		return store.Subscription{}, "", invalid("url: %v", err)
	}
	if spec.Secret == "" {
		spec.Secret = NewSecret()
	} else if _, err := ParseSecret(spec.Secret); err != nil {
		return store.Subscription{}, "", invalid("secret: %v", err)
	}
	if len(spec.Description) > 500 {
		return store.Subscription{}, "", invalid("description: at most 500 characters")
	}
	sub, err := m.Store.CreateSubscription(ctx, spec)
	if err != nil {
		return store.Subscription{}, "", err
	}
	return sub, spec.Secret, nil
}

// Update changes a subscription's URL, event types, integration filter or description.
func (m *Manager) Update(ctx context.Context, id string, p store.SubscriptionPatch) (store.Subscription, error) {
	if p.URL != nil {
		u := strings.TrimSpace(*p.URL)
		if err := m.Client.CheckURL(u); err != nil {
			return store.Subscription{}, invalid("url: %v", err)
		}
		p.URL = &u
	}
	if p.Description != nil && len(*p.Description) > 500 {
		return store.Subscription{}, invalid("description: at most 500 characters")
	}
	p.Secrets = nil // RotateSecret does that
	return m.Store.UpdateSubscription(ctx, id, p)
}

// RotateSecret puts a new secret first; with keepOld the current ones keep signing too (the
// receiver accepts either while it switches; at most 5), otherwise the new one alone signs.
func (m *Manager) RotateSecret(ctx context.Context, id string, keepOld bool) (store.Subscription, string, error) {
	sub, err := m.Store.GetSubscription(ctx, id)
	if err != nil {
		return store.Subscription{}, "", err
	}
	secret := NewSecret()
	secrets := []string{secret}
	if keepOld {
		secrets = append(secrets, sub.Secrets...)
		if len(secrets) > 5 {
			secrets = secrets[:5]
		}
	}
	sub, err = m.Store.UpdateSubscription(ctx, id, store.SubscriptionPatch{Secrets: &secrets})
	return sub, secret, err
}

// Pause stops deliveries; events keep queuing (coalesced) until Resume.
func (m *Manager) Pause(ctx context.Context, id, reason string) (store.Subscription, error) {
	sub, err := m.Store.SetSubscriptionState(ctx, id, store.SubscriptionPaused, reason)
	if err != nil {
		return sub, err
	}
	return sub, m.wake(ctx, id, false, "pause")
}

// Resume makes a paused or disabled subscription active, forgets its failures and delivers at once.
func (m *Manager) Resume(ctx context.Context, id, reason string) (store.Subscription, error) {
	sub, err := m.Store.SetSubscriptionState(ctx, id, store.SubscriptionActive, reason)
	if err != nil {
		return sub, err
	}
	return sub, m.wake(ctx, id, true, "resume")
}

// Replay queues past deliveries again (same ids, same bodies) and delivers at once.
func (m *Manager) Replay(ctx context.Context, id string, from store.ReplayFrom) (int64, error) {
	if _, err := m.Store.GetSubscription(ctx, id); err != nil {
		return 0, err
	}
	n, err := m.Store.ReplaySubscription(ctx, id, from)
	if err != nil {
		return 0, err
	}
	return n, m.wake(ctx, id, true, "replay")
}

// Delete removes a subscription and its deliveries; its workflow ends at its next look.
func (m *Manager) Delete(ctx context.Context, id string) error {
	if err := m.Store.DeleteSubscription(ctx, id); err != nil {
		return err
	}
	return m.wake(ctx, id, true, "delete")
}

func (m *Manager) wake(ctx context.Context, id string, now bool, reason string) error {
	if m.Wake == nil {
		return nil
	}
	if err := m.Wake(ctx, id, now, reason); err != nil {
		return &WakeError{Err: err}
	}
	return nil
}

// WakeError: the change is saved, but the delivery workflow could not be told; it looks again
// within minutes on its own.
type WakeError struct{ Err error }

func (e *WakeError) Error() string {
	return "the change is saved, but the delivery workflow could not be told (it looks again within minutes): " + e.Err.Error()
}

func (e *WakeError) Unwrap() error { return e.Err }
