package dump

import (
	"errors"
	"fmt"
)

// Escaping modes of the composefs-dump(5) format.
const (
	escapeStandard = 0
	noEscapeSpace  = 1 << iota // keep ' ' (used by "composefs-info ls")
	escapeEqual                // escape '=' (xattr names and values)
	escapeLoneDash             // escape a value that is exactly "-"
)

const hexDigits = "0123456789abcdef"

// appendEscaped appends s escaped the way composefs-dump(5) writes fields:
// backslash, newline, CR and tab as \\ \n \r \t, other bytes outside the
// printable ASCII range (and a space, unless noEscapeSpace) as \xNN.
func appendEscaped(b []byte, s []byte, mode int) []byte {
	if mode&escapeLoneDash != 0 && len(s) == 1 && s[0] == '-' {
		return append(b, `\x2d`...)
	}
	for _, c := range s {
		switch c {
		case '\\':
			b = append(b, '\\', '\\')
			continue
		case '\n':
			b = append(b, '\\', 'n')
			continue
		case '\r':
			b = append(b, '\\', 'r')
			continue
		case '\t':
			b = append(b, '\\', 't')
			continue
		}
		var hex bool
		switch {
		case c == '=':
			hex = mode&escapeEqual != 0
		case c == ' ':
			hex = mode&noEscapeSpace == 0
		default:
			hex = c < 0x21 || c > 0x7e
		}
		if hex {
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&15])
		} else {
			b = append(b, c)
		}
	}
	return b
}

// AppendEscaped appends s as a composefs-dump(5) field (paths, payloads).
func AppendEscaped(b []byte, s []byte) []byte { return appendEscaped(b, s, escapeStandard) }

// AppendEscapedLs appends s escaped as "composefs-info ls" prints paths:
// spaces are kept.
func AppendEscapedLs(b []byte, s []byte) []byte { return appendEscaped(b, s, noEscapeSpace) }

var errEscape = errors.New("invalid escape")

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// unescape decodes one escaped field. Bytes that need no decoding are
// returned without copying.
func unescape(s []byte) ([]byte, error) {
	i := 0
	for i < len(s) && s[i] != '\\' {
		i++
	}
	if i == len(s) {
		return s, nil
	}
	out := make([]byte, i, len(s))
	copy(out, s[:i])
	for i < len(s) {
		c := s[i]
		i++
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i >= len(s) {
			return nil, fmt.Errorf("%w: no character after backslash", errEscape)
		}
		c = s[i]
		i++
		switch c {
		case '\\':
			out = append(out, '\\')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'x':
			if i+2 > len(s) {
				return nil, fmt.Errorf("%w: \\x needs two hex digits", errEscape)
			}
			h, l := unhex(s[i]), unhex(s[i+1])
			if h < 0 || l < 0 {
				return nil, fmt.Errorf("%w: \\x%s is not hex", errEscape, s[i:i+2])
			}
			out = append(out, byte(h<<4|l))
			i += 2
		default:
			return nil, fmt.Errorf("%w: unsupported escape \\%c", errEscape, c)
		}
	}
	return out, nil
}
