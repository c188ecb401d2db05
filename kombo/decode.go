package kombo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// Record is one record of a list answer: Raw as Kombo sent it (sanitised, see Sanitized), plus
// the fields the sync needs. RemoteID is empty when Kombo sent null.
type Record struct {
	ID              string
	RemoteID        string
	ChangedAt       time.Time
	RemoteDeletedAt *time.Time
	Raw             json.RawMessage
	// Sanitized: Raw held what no PostgreSQL text or jsonb can store, and was changed: the escape
	// \u0000 removed, an unpaired surrogate escape or a byte that is not UTF-8 replaced by U+FFFD.
	Sanitized bool
}

// Page is one page of a list answer. Next is empty on the last page.
type Page struct {
	Records []Record
	// Rejected are the page's elements that are not records kombosync can take (not an object,
	// no string id, no parsable changed_at). The rest of the page is unaffected.
	Rejected []RejectedRecord
	Next     string
}

// RejectedRecord is an element of a page that is not a record kombosync can take.
type RejectedRecord struct {
	ID      string // the record's id, when it has a string one
	Reason  string
	Raw     json.RawMessage // the element's bytes, sanitised
	Excerpt string          // the start of Raw, at most MaxExcerptBytes, for people to look at
}

// MaxExcerptBytes bounds RejectedRecord.Excerpt.
const MaxExcerptBytes = 512

// DecodeError says that a page's body is not a page at all (not JSON, no data). It repeats on
// every attempt, so retrying it is useless.
type DecodeError struct{ Err error }

func (e *DecodeError) Error() string { return "decode page: " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

func decodePage(body []byte) (*Page, error) {
	body, fixed := sanitize(body)
	page, status, sawData, err := readEnvelope(body, fixed)
	if err != nil {
		return nil, &DecodeError{err}
	}
	if status != "success" || !sawData {
		return nil, &DecodeError{fmt.Errorf("status %q without data", status)}
	}
	return page, nil
}

// readEnvelope walks {"status": …, "data": {"next": …, "results": [record, …]}} in one pass:
// each record's bytes are sliced out of the body while only its top-level id, remote_id,
// changed_at and remote_deleted_at are read and everything nested is skipped. encoding/json
// scanned every byte four times (validate, decode, and both again per record): a third of a full
// pass's CPU.
//
// fixed are the offsets in body where sanitize changed something: a record spanning one is marked
// Sanitized.
func readEnvelope(body []byte, fixed []int) (page *Page, status string, sawData bool, err error) {
	page = &Page{Records: make([]Record, 0, DefaultPageSize)}
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	err = readObject(dec, func(name jsontext.Value) error {
		switch string(name) {
		case `"status"`:
			status, err = readString(dec)
			return err
		case `"data"`:
			if dec.PeekKind() == 'n' {
				_, err := dec.ReadToken()
				return err
			}
			sawData = true
			return readObject(dec, func(name jsontext.Value) error {
				switch string(name) {
				case `"next"`:
					next, err := readNullableString(dec)
					page.Next = deref(next)
					return err
				case `"results"`:
					return readArray(dec, func() error {
						start := dec.InputOffset()
						r, reason, err := readRecord(dec)
						if err != nil {
							return fmt.Errorf("record %d: %w", len(page.Records)+len(page.Rejected), err)
						}
						end := int(dec.InputOffset())
						r.Raw = bytes.TrimLeft(body[start:end], " \t\r\n,")
						if i, _ := slices.BinarySearch(fixed, int(start)); i < len(fixed) && fixed[i] < end {
							r.Sanitized = true
						}
						if reason != "" {
							page.Rejected = append(page.Rejected, RejectedRecord{ID: r.ID, Reason: reason, Raw: r.Raw,
								Excerpt: excerpt(r.Raw)})
							return nil
						}
						page.Records = append(page.Records, r)
						return nil
					})
				}
				return dec.SkipValue()
			})
		}
		return dec.SkipValue()
	})
	return page, status, sawData, err
}

// readRecord reads a record's top-level metadata, skipping everything nested. A well-formed
// element that is not a record kombosync can take is consumed whole and reason says why; err is
// only for bytes that are not JSON, which end the page.
func readRecord(dec *jsontext.Decoder) (r Record, reason string, err error) {
	if k := dec.PeekKind(); k != '{' {
		return Record{}, fmt.Sprintf("not an object but %s", kindName(k)), dec.SkipValue()
	}
	var changedAt *time.Time
	var problems []string
	field := func(name string, read func() error) error {
		if k := dec.PeekKind(); k != '"' && k != 'n' {
			problems = append(problems, fmt.Sprintf("%s is %s, not a string", name, kindName(k)))
			return dec.SkipValue()
		}
		if err := read(); err != nil {
			var se *jsontext.SyntacticError
			if errors.As(err, &se) {
				return err
			}
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
		}
		return nil
	}
	err = readObject(dec, func(name jsontext.Value) error {
		switch string(name) {
		case `"id"`:
			return field("id", func() (err error) { r.ID, err = readString(dec); return err })
		case `"remote_id"`:
			return field("remote_id", func() error {
				id, err := readNullableString(dec)
				r.RemoteID = deref(id)
				return err
			})
		case `"changed_at"`:
			return field("changed_at", func() (err error) { changedAt, err = readTime(dec); return err })
		case `"remote_deleted_at"`:
			return field("remote_deleted_at", func() (err error) { r.RemoteDeletedAt, err = readTime(dec); return err })
		}
		return dec.SkipValue()
	})
	if err != nil {
		return Record{}, "", err
	}
	if r.ID == "" {
		problems = append(problems, "no id")
	}
	if changedAt == nil && !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, "changed_at") }) {
		problems = append(problems, "no changed_at")
	}
	if len(problems) > 0 {
		return r, strings.Join(problems, "; "), nil
	}
	r.ChangedAt = *changedAt
	return r, "", nil
}

func kindName(k jsontext.Kind) string {
	switch k {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "nothing"
}

// readObject reads an object, calling member with each name (raw and quoted, as "id"; Kombo
// does not escape its names) and the decoder at its value, which member must consume.
func readObject(dec *jsontext.Decoder, member func(name jsontext.Value) error) error {
	if tok, err := dec.ReadToken(); err != nil {
		return err
	} else if tok.Kind() != '{' {
		return fmt.Errorf("want an object, got %s", tok.Kind())
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		if err := member(name); err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

// readArray reads an array, calling elem with the decoder at each element.
func readArray(dec *jsontext.Decoder, elem func() error) error {
	if tok, err := dec.ReadToken(); err != nil {
		return err
	} else if tok.Kind() != '[' {
		return fmt.Errorf("want an array, got %s", tok.Kind())
	}
	for dec.PeekKind() != ']' {
		if err := elem(); err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

func readString(dec *jsontext.Decoder) (string, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return "", err
	}
	if tok.Kind() != '"' {
		return "", fmt.Errorf("want a string, got %s", tok.Kind())
	}
	return tok.String(), nil
}

func readNullableString(dec *jsontext.Decoder) (*string, error) {
	if dec.PeekKind() == 'n' {
		_, err := dec.ReadToken()
		return nil, err
	}
	s, err := readString(dec)
	return &s, err
}

func readTime(dec *jsontext.Decoder) (*time.Time, error) {
	s, err := readNullableString(dec)
	if s == nil || err != nil {
		return nil, err
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return nil, err
	}
	return &t, nil
}
