// Package privacy is kombosync's field policy: per endpoint, JSON paths of a record that are
// dropped, or replaced by a keyed hash, before anything is stored (FIELD_POLICY_FILE). It is
// applied to every record before it is written and diffed, so neither kombo.records.data nor
// kombo.changes.diff ever holds those values.
package privacy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/kombosync/kombosync/kombo"
)

// HashPrefix starts every hashed value: "hmac-sha256:" and 64 hex digits. A value that already
// starts with it is left alone, so applying a policy twice changes nothing.
const HashPrefix = "hmac-sha256:"

// MinHashKeyBytes is the shortest FIELD_POLICY_HASH_KEY accepted.
const MinHashKeyBytes = 32

// Rules are one endpoint's paths. A path names a field by its keys from the record's top,
// separated by dots; a key followed by [] descends into every element of that array:
// "date_of_birth", "home_address.street_1", "bank_accounts", "employments[].pay_rate".
type Rules struct {
	Drop []string `json:"drop,omitempty"`
	Hash []string `json:"hash,omitempty"`
}

// Policy is the field policy of every endpoint. The zero Policy (and nil) changes nothing.
type Policy struct {
	byEndpoint map[string]*endpointRules
	key        []byte
}

type endpointRules struct {
	rules    Rules
	paths    []path // drops first, then hashes
	topLevel []string
}

type path struct {
	segs []segment
	hash bool
	text string
}

type segment struct {
	key   string
	array bool
}

// protected are the fields kombosync itself keys on; no policy may touch them.
var protected = []string{"id", "remote_id", "changed_at", "remote_deleted_at"}

// Parse reads a policy document: {"hris/employees": {"drop": [...], "hash": [...]}, ...}.
// hashKey is required when any rule hashes.
func Parse(doc []byte, hashKey []byte) (*Policy, error) {
	var raw map[string]Rules
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("field policy: not a policy document ({\"hris/employees\": {\"drop\": [...], \"hash\": [...]}}): %w", err)
	}
	p := &Policy{byEndpoint: map[string]*endpointRules{}, key: hashKey}
	var errs []error
	hashes := false
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		ep, ok := kombo.LookupEndpoint(name)
		if !ok {
			errs = append(errs, fmt.Errorf("field policy: unknown endpoint %q", name))
			continue
		}
		r := raw[name]
		er := &endpointRules{rules: Rules{Drop: slices.Clone(r.Drop), Hash: slices.Clone(r.Hash)}}
		seen := map[string]bool{}
		for _, list := range []struct {
			paths []string
			hash  bool
		}{{r.Drop, false}, {r.Hash, true}} {
			for _, text := range list.paths {
				pt, err := parsePath(text)
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("field policy %s: %w", ep, err))
					continue
				case seen[text]:
					errs = append(errs, fmt.Errorf("field policy %s: %q is listed twice", ep, text))
					continue
				}
				seen[text] = true
				pt.hash = list.hash
				hashes = hashes || list.hash
				er.paths = append(er.paths, pt)
				if top := pt.segs[0].key; !slices.Contains(er.topLevel, top) {
					er.topLevel = append(er.topLevel, top)
				}
			}
		}
		slices.Sort(er.topLevel)
		if len(er.paths) > 0 {
			p.byEndpoint[ep.String()] = er
		}
	}
	if hashes && len(hashKey) < MinHashKeyBytes {
		errs = append(errs, fmt.Errorf("field policy: hashing needs FIELD_POLICY_HASH_KEY of at least %d bytes", MinHashKeyBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// Load reads the policy file at path (no policy when path is empty).
func Load(file string, hashKey []byte) (*Policy, error) {
	if file == "" {
		return nil, nil
	}
	doc, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("field policy: %w", err)
	}
	return Parse(doc, hashKey)
}

func parsePath(text string) (path, error) {
	if strings.TrimSpace(text) != text || text == "" {
		return path{}, fmt.Errorf("path %q: empty or padded with spaces", text)
	}
	var pt path
	pt.text = text
	for _, s := range strings.Split(text, ".") {
		seg := segment{key: s}
		if k, ok := strings.CutSuffix(s, "[]"); ok {
			seg = segment{key: k, array: true}
		}
		if seg.key == "" || strings.ContainsAny(seg.key, "[]") {
			return path{}, fmt.Errorf("path %q: segment %q is not a key or key[]", text, s)
		}
		pt.segs = append(pt.segs, seg)
	}
	if last := pt.segs[len(pt.segs)-1]; last.array {
		return path{}, fmt.Errorf("path %q: the last segment names a field, not the elements of an array (drop %q)", text, strings.TrimSuffix(text, "[]"))
	}
	if len(pt.segs) == 1 && slices.Contains(protected, pt.segs[0].key) {
		return path{}, fmt.Errorf("path %q: kombosync keys on this field; it cannot be dropped or hashed", text)
	}
	return pt, nil
}

// Empty says that the policy changes nothing anywhere.
func (p *Policy) Empty() bool { return p == nil || len(p.byEndpoint) == 0 }

// Endpoints are the endpoints with rules, sorted.
func (p *Policy) Endpoints() []string {
	if p == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(p.byEndpoint))
}

// TopLevel are the record's top-level fields the endpoint's rules touch: their values never go
// into a change row's diff (it holds "[redacted]" for them).
func (p *Policy) TopLevel(endpoint string) []string {
	if er := p.rulesOf(endpoint); er != nil {
		return er.topLevel
	}
	return nil
}

// Fingerprint identifies the endpoint's rules ("" for none): stored rows follow the rules of the
// fingerprint kombo.field_policies records for them.
func (p *Policy) Fingerprint(endpoint string) string {
	er := p.rulesOf(endpoint)
	if er == nil {
		return ""
	}
	drop, hash := slices.Sorted(slices.Values(er.rules.Drop)), slices.Sorted(slices.Values(er.rules.Hash))
	b, _ := json.Marshal(Rules{Drop: drop, Hash: hash})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func (p *Policy) rulesOf(endpoint string) *endpointRules {
	if p == nil {
		return nil
	}
	return p.byEndpoint[endpoint]
}

// Apply returns the record with the endpoint's rules applied, and whether anything changed; raw
// itself is returned when nothing did. A record that is not a JSON object is returned as is.
func (p *Policy) Apply(endpoint string, raw []byte) ([]byte, bool, error) {
	er := p.rulesOf(endpoint)
	if er == nil {
		return raw, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers keep their text
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, false, fmt.Errorf("field policy: decode record: %w", err)
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return raw, false, nil
	}
	changed := false
	for _, pt := range er.paths {
		changed = p.applyPath(obj, pt, pt.segs) || changed
	}
	if !changed {
		return raw, false, nil
	}
	out, err := marshal(obj)
	return out, true, err
}

// applyPath applies one path's action under obj, returning whether anything changed.
func (p *Policy) applyPath(obj map[string]any, pt path, segs []segment) bool {
	seg := segs[0]
	v, ok := obj[seg.key]
	if !ok {
		return false
	}
	if len(segs) == 1 {
		if !pt.hash {
			delete(obj, seg.key)
			return true
		}
		h, changed := p.hash(v)
		obj[seg.key] = h
		return changed
	}
	changed := false
	visit := func(child any) {
		if m, ok := child.(map[string]any); ok {
			changed = p.applyPath(m, pt, segs[1:]) || changed
		}
	}
	if seg.array {
		if arr, ok := v.([]any); ok {
			for _, el := range arr {
				visit(el)
			}
		}
	} else {
		visit(v)
	}
	return changed
}

// hash is the keyed hash of a value: of the string itself, or of the JSON of anything else.
// null stays null; a value hashed already stays as it is.
func (p *Policy) hash(v any) (any, bool) {
	var b []byte
	switch x := v.(type) {
	case nil:
		return nil, false
	case string:
		if strings.HasPrefix(x, HashPrefix) {
			return x, false
		}
		b = []byte(x)
	default:
		var err error
		if b, err = marshal(x); err != nil {
			b = []byte(fmt.Sprint(x))
		}
	}
	m := hmac.New(sha256.New, p.key)
	m.Write(b)
	return HashPrefix + hex.EncodeToString(m.Sum(nil)), true
}

// marshal writes JSON without HTML escaping (jsonb stores the characters either way).
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
