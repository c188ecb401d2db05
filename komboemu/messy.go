package komboemu

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/kombosync/kombosync/kombo"
)

// Mess is a way real HR data, or Kombo, gets a record wrong.
type Mess string

const (
	// MessNUL puts the escape \u0000 in a free-text field (text pasted from another program).
	MessNUL Mess = "nul"
	// MessSurrogate puts an unpaired surrogate escape (\ud800) in a free-text field.
	MessSurrogate Mess = "surrogate"
	// MessInvalidUTF8 puts a byte that is not UTF-8 in a free-text field, raw on the wire.
	MessInvalidUTF8 Mess = "invalid-utf8"
	// MessHuge puts 300 KB of text in a free-text field.
	MessHuge Mess = "huge"
	// MessDuplicate sends the record twice in its page (an upstream glitch).
	MessDuplicate Mess = "duplicate"
	// MessBroken sends, instead of the record, an object without its changed_at.
	MessBroken Mess = "broken"
	// MessNone undoes every mess of the record: it is sent well-formed again.
	MessNone Mess = "none"
)

// Messes are every mess but MessNone.
var Messes = []Mess{MessNUL, MessSurrogate, MessInvalidUTF8, MessHuge, MessDuplicate, MessBroken}

// HugeFieldBytes is the size of MessHuge's text.
const HugeFieldBytes = 300 << 10

// messField is the free-text field messes go in; no record of the catalogue has it otherwise.
const messField = "custom_note"

// Make applies a mess to a record (a random live one when id is empty), as a change of that
// record: its changed_at moves and a data-changed webhook follows.
func (e *Emulator) Make(integrationID string, ep kombo.Endpoint, id string, m Mess) (Change, error) {
	cs, err := e.mutateEach(integrationID, 1, func(i *integration, _ int) Mutation {
		return Mutation{Endpoint: ep, Op: OpUpdate, ID: id, Fields: map[string]any{}, mess: m}
	})
	if err != nil {
		return Change{}, err
	}
	return cs[0], nil
}

// mess applies m to r, whose own fields are about to be marked changed.
func (r *record) mess(m Mess, now string) error {
	switch m {
	case MessNUL:
		r.fields[messField] = "before\x00after" // encoding/json writes U+0000 as \u0000
	case MessSurrogate:
		r.fields[messField] = json.RawMessage(`"half a pair: \ud800 here"`)
	case MessInvalidUTF8:
		r.fields[messField] = json.RawMessage("\"a byte: \xff here\"")
	case MessHuge:
		r.fields[messField] = strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", HugeFieldBytes/57+1)[:HugeFieldBytes]
	case MessDuplicate:
		r.duplicated = true
	case MessBroken:
		r.broken = fmt.Appendf(nil, `{"id":%q,"remote_id":null,"changed_at":"not a time at %s","remote_deleted_at":null}`, r.id, now)
	case MessNone:
		delete(r.fields, messField)
		r.duplicated, r.broken = false, nil
	default:
		return fmt.Errorf("komboemu: unknown mess %q", m)
	}
	return nil
}
