package model

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Ownership records. ManagedAnnotation lists the user subjects this tool
// added, so that it removes only those and never a subject added by hand.
const (
	ManagedAnnotation = "runai-ldap-sync.github.io/managed-users"
	ManagedByLabel    = "app.kubernetes.io/managed-by"
	ManagedByValue    = "runai-ldap-sync"
	FieldManager      = "runai-ldap-sync"
)

// compressAbove is the size at which the managed list is stored gzipped, to
// stay far below the 256 KiB limit on a binding's annotations.
const compressAbove = 8 << 10

// GzipPrefix starts a gzipped ownership record.
const GzipPrefix = "gzip+base64:"

// EncodeManaged stores a user list in the annotation value: a JSON array of
// strings, so any Kubernetes user name round-trips (commas, spaces,
// quotes, non-ASCII); gzipped when large.
func EncodeManaged(users []string) string {
	sorted := SortedUnique(users)
	raw, _ := json.Marshal(sorted) // a []string always encodes
	plain := string(raw)
	if len(plain) <= compressAbove {
		return plain
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	return GzipPrefix + base64.StdEncoding.EncodeToString(buf.Bytes())
}

// Bounds of an ownership record, checked while it is read, so a binding
// whose record is a bomb (a few KB of gzip that inflate to gigabytes, or a
// list of millions of names) costs at most these and is that binding's
// error. A record lists the users its binding holds, and one binding holds
// at most kubernetes.bindingShardBytes (1 MiB) of subjects, each more than
// 40 bytes besides its name, so every record this tool writes fits.
const (
	// MaxRecordEncoded is the annotation value's size: Kubernetes refuses
	// more than 256 KiB of annotations on one object.
	MaxRecordEncoded = 256 << 10
	// MaxRecordBytes is the JSON list's size once decompressed.
	MaxRecordBytes = 1 << 20
	// MaxRecordUsers is the number of names in it.
	MaxRecordUsers = 1 << 15
)

// ErrRecordTooLarge means an ownership record is over one of its bounds.
var ErrRecordTooLarge = errors.New("ownership record over its bounds")

// DecodeManaged reads the annotation value: a JSON array (what this
// version writes) or, from earlier versions, names joined with commas
// (those never start with '[', as no written name did). A value that
// cannot be read is an error: treating it as empty would forget what we
// own, and treating it as anything else would be a guess. A gzipped value
// is inflated as a stream and never past MaxRecordBytes.
func DecodeManaged(v string) ([]string, error) {
	if len(v) > MaxRecordEncoded {
		return nil, fmt.Errorf("annotation %s: %d bytes, more than %d: %w", ManagedAnnotation, len(v), MaxRecordEncoded, ErrRecordTooLarge)
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	if rest, ok := strings.CutPrefix(v, GzipPrefix); ok {
		zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, strings.NewReader(rest)))
		if err != nil {
			return nil, fmt.Errorf("annotation %s: bad gzip: %w", ManagedAnnotation, err)
		}
		br := bufio.NewReader(&capReader{r: zr, left: MaxRecordBytes})
		if first, err := skipSpace(br); err == nil && first != '[' {
			// An earlier version's comma-joined record, gzipped.
			plain, err := io.ReadAll(br)
			if err != nil {
				return nil, fmt.Errorf("annotation %s: bad gzip or more than %d bytes once decompressed: %w", ManagedAnnotation, MaxRecordBytes, err)
			}
			return splitCommas(string(plain))
		}
		out, err := decodeList(br)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", ManagedAnnotation, err)
		}
		return out, nil
	}
	if strings.HasPrefix(v, "[") {
		out, err := decodeList(strings.NewReader(v))
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", ManagedAnnotation, err)
		}
		return out, nil
	}
	return splitCommas(v)
}

// skipSpace drops leading white space and returns the next byte, unread.
func skipSpace(r *bufio.Reader) (byte, error) {
	for {
		c, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c, r.UnreadByte()
		}
	}
}

// splitCommas reads the comma-joined record of earlier versions.
func splitCommas(v string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if len(out) == MaxRecordUsers {
				return nil, fmt.Errorf("annotation %s: more than %d names: %w", ManagedAnnotation, MaxRecordUsers, ErrRecordTooLarge)
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// decodeList reads one JSON list of strings from r, and stops at
// MaxRecordUsers; leading and trailing space is allowed, anything after
// the list is not. Empty names (and nulls) are dropped. r is bounded by
// its caller (MaxRecordEncoded, or capReader's MaxRecordBytes), so it is
// read whole: one string whose pieces are the names, instead of a
// json.Decoder call and an allocation per name (a 60,000-user union's
// record took 0.15 s a cycle that way).
func decodeList(r io.Reader) ([]string, error) {
	data, err := io.ReadAll(r)
	if errors.Is(err, ErrRecordTooLarge) {
		return nil, fmt.Errorf("more than %d bytes once decompressed: %w", MaxRecordBytes, err)
	}
	if err != nil {
		return nil, fmt.Errorf("not a JSON list of user names: %w", err)
	}
	out, err := parseList(string(data))
	if err != nil && !errors.Is(err, ErrRecordTooLarge) {
		return nil, fmt.Errorf("not a JSON list of user names: %w", err)
	}
	return out, err
}

// parseList parses s as encoding/json would a []string, with decodeList's
// rules. A name without escapes and in valid UTF-8 is a piece of s; any
// other is decoded by encoding/json itself, so both read the same names.
func parseList(s string) ([]string, error) {
	i := skipJSONSpace(s, 0)
	if i == len(s) || s[i] != '[' {
		return nil, errors.New("does not start with [")
	}
	i = skipJSONSpace(s, i+1)
	var out []string
	for first := true; ; first = false {
		if i < len(s) && s[i] == ']' && first {
			i++
			break
		}
		if len(out) == MaxRecordUsers {
			return nil, fmt.Errorf("more than %d names: %w", MaxRecordUsers, ErrRecordTooLarge)
		}
		name, next, err := parseListString(s, i)
		if err != nil {
			return nil, err
		}
		if name != "" {
			out = append(out, name)
		}
		i = skipJSONSpace(s, next)
		if i < len(s) && s[i] == ',' {
			i = skipJSONSpace(s, i+1)
			continue
		}
		if i < len(s) && s[i] == ']' {
			i++
			break
		}
		return nil, fmt.Errorf("expected , or ] at byte %d", i)
	}
	if skipJSONSpace(s, i) != len(s) {
		return nil, errors.New("data after the list")
	}
	return out, nil
}

// parseListString reads the list element at s[i:]: a JSON string, or null
// (an empty name). It returns the name and the index after the element.
func parseListString(s string, i int) (string, int, error) {
	if strings.HasPrefix(s[i:], "null") {
		return "", i + len("null"), nil
	}
	if i == len(s) || s[i] != '"' {
		return "", 0, fmt.Errorf("expected a string at byte %d", i)
	}
	plain := true
	j := i + 1
	for ; j < len(s) && s[j] != '"'; j++ {
		switch {
		case s[j] == '\\':
			plain = false
			j++ // the escaped byte is never the closing quote
		case s[j] < 0x20 || s[j] >= utf8.RuneSelf:
			plain = false
		}
	}
	if j >= len(s) {
		return "", 0, fmt.Errorf("unterminated string at byte %d", i)
	}
	if plain {
		return s[i+1 : j], j + 1, nil
	}
	var name string
	if err := json.Unmarshal([]byte(s[i:j+1]), &name); err != nil {
		return "", 0, err
	}
	return name, j + 1, nil
}

// skipJSONSpace returns the index of the first byte at or after i that is
// not JSON white space.
func skipJSONSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// capReader reads at most left bytes, then fails with ErrRecordTooLarge.
type capReader struct {
	r    io.Reader
	left int
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// One byte more tells a record of exactly the limit from a larger one.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			return 0, ErrRecordTooLarge
		}
		return 0, err
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= n
	return n, err
}
