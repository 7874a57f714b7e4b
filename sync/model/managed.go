package model

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
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

// DecodeManaged reads the annotation value: a JSON array (what this
// version writes) or, from earlier versions, names joined with commas
// (those never start with '[', as no written name did). A value that
// cannot be read is an error: treating it as empty would forget what we
// own, and treating it as anything else would be a guess.
func DecodeManaged(v string) ([]string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	if rest, ok := strings.CutPrefix(v, GzipPrefix); ok {
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: bad base64: %w", ManagedAnnotation, err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("annotation %s: bad gzip: %w", ManagedAnnotation, err)
		}
		plain, err := io.ReadAll(io.LimitReader(zr, 16<<20))
		if err != nil {
			return nil, fmt.Errorf("annotation %s: bad gzip: %w", ManagedAnnotation, err)
		}
		v = strings.TrimSpace(string(plain))
	}
	if strings.HasPrefix(v, "[") {
		var out []string
		if err := json.Unmarshal([]byte(v), &out); err != nil {
			return nil, fmt.Errorf("annotation %s: not a JSON list of user names: %w", ManagedAnnotation, err)
		}
		var kept []string
		for _, s := range out {
			if s != "" {
				kept = append(kept, s)
			}
		}
		return kept, nil
	}
	// The comma-joined record of earlier versions.
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}
