package komboemu

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// ExpireCursors makes every cursor issued so far invalid, as if it had expired.
func (e *Emulator) ExpireCursors() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cursorEpoch++
}

// Cursors are opaque to clients: base64url of the epoch, the last seq, a hash binding them to
// the integration and the query, and the issue time.
func (e *Emulator) encodeCursor(seq, binding uint64) string {
	var b [32]byte
	binary.BigEndian.PutUint64(b[0:], e.cursorEpoch)
	binary.BigEndian.PutUint64(b[8:], seq)
	binary.BigEndian.PutUint64(b[16:], binding)
	binary.BigEndian.PutUint64(b[24:], uint64(e.now().UnixMilli()))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (e *Emulator) decodeCursor(c string, binding uint64) (uint64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) != 32 {
		return 0, false
	}
	if binary.BigEndian.Uint64(b[0:]) != e.cursorEpoch || binary.BigEndian.Uint64(b[16:]) != binding {
		return 0, false
	}
	issued := time.UnixMilli(int64(binary.BigEndian.Uint64(b[24:])))
	if e.opts.CursorTTL > 0 && e.now().Sub(issued) > e.opts.CursorTTL {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[8:]), true
}

func queryHash(q url.Values) uint64 {
	keys := make([]string, 0, len(q))
	for k := range q {
		if k != "cursor" && k != "page_size" { // filters must be sent again; the page size may change
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s&", k, strings.Join(q[k], ","))
	}
	return binary.BigEndian.Uint64(h.Sum(nil))
}

func iidHash(id string) uint64 {
	s := sha256.Sum256([]byte(id))
	return binary.BigEndian.Uint64(s[:])
}
