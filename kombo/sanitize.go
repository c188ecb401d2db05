package kombo

import (
	"bytes"
	"unicode/utf8"
)

// sanitize makes a page's body storable by PostgreSQL, whose text and jsonb types cannot hold
// U+0000 or unpaired surrogates, the way trusted sync tools' Postgres destinations do: the escape
// \u0000 is removed, an escape of an unpaired surrogate (\ud800 alone) becomes \ufffd, and a byte
// that is not UTF-8 becomes U+FFFD. Real HR data holds such things (text pasted from other
// programs), and one such record must not stop its endpoint. It returns the body (the same slice
// when nothing needed a change, the common case, found without allocating) and the offsets in
// the result where it changed something, ascending.
func sanitize(body []byte) ([]byte, []int) {
	if utf8.Valid(body) && !hasBadEscape(body) {
		return body, nil
	}
	out := make([]byte, 0, len(body))
	var fixed []int
	for i := 0; i < len(body); {
		c := body[i]
		switch {
		case c == '\\' && i+1 < len(body) && body[i+1] == 'u' && i+6 <= len(body):
			u, ok := hex4(body[i+2 : i+6])
			switch {
			case !ok:
				out = append(out, body[i:i+6]...) // not an escape jsontext accepts either: it says so
			case u == 0:
				fixed = append(fixed, len(out))
			case isHighSurrogate(u) && i+12 <= len(body) && body[i+6] == '\\' && body[i+7] == 'u' && isLowSurrogateHex(body[i+8:i+12]):
				out = append(out, body[i:i+12]...)
				i += 12
				continue
			case isHighSurrogate(u) || isLowSurrogate(u):
				fixed = append(fixed, len(out))
				out = append(out, `\ufffd`...)
			default:
				out = append(out, body[i:i+6]...)
			}
			i += 6
		case c == '\\' && i+1 < len(body):
			out = append(out, c, body[i+1]) // \\ \" \n …: the second byte is never an escape's start
			i += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, n := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && n == 1 {
				fixed = append(fixed, len(out))
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, body[i:i+n]...)
			}
			i += n
		}
	}
	return out, fixed
}

// hasBadEscape reports whether body holds \u0000 or a surrogate escape (paired ones too: the
// slow path tells them apart).
func hasBadEscape(body []byte) bool {
	for i := bytes.Index(body, []byte(`\u`)); i >= 0; {
		if backslashesBefore(body, i)%2 == 0 { // not itself escaped (\\u0000 is text)
			if u, ok := hex4(body[min(i+2, len(body)):min(i+6, len(body))]); ok && (u == 0 || isHighSurrogate(u) || isLowSurrogate(u)) {
				return true
			}
		}
		next := bytes.Index(body[i+2:], []byte(`\u`))
		if next < 0 {
			return false
		}
		i += 2 + next
	}
	return false
}

// backslashesBefore counts the backslashes right before body[i].
func backslashesBefore(body []byte, i int) int {
	n := 0
	for i > 0 && body[i-1] == '\\' {
		n++
		i--
	}
	return n
}

func hex4(b []byte) (rune, bool) {
	if len(b) != 4 {
		return 0, false
	}
	var u rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			u = u<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			u = u<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			u = u<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return u, true
}

func isHighSurrogate(u rune) bool { return u >= 0xd800 && u <= 0xdbff }
func isLowSurrogate(u rune) bool  { return u >= 0xdc00 && u <= 0xdfff }

func isLowSurrogateHex(b []byte) bool {
	u, ok := hex4(b)
	return ok && isLowSurrogate(u)
}

// excerpt is the start of raw, at most MaxExcerptBytes, cut at a character boundary.
func excerpt(raw []byte) string {
	if len(raw) <= MaxExcerptBytes {
		return string(raw)
	}
	cut := MaxExcerptBytes
	for cut > 0 && !utf8.RuneStart(raw[cut]) {
		cut--
	}
	return string(raw[:cut]) + "…"
}

// Sanitize returns raw JSON as kombosync stores it (see sanitize): what a reader of kombo.*
// compares Kombo's answers with.
func Sanitize(raw []byte) []byte {
	out, _ := sanitize(raw)
	return out
}
