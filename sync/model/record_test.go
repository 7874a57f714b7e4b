package model

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

func gzipRecord(t *testing.T, plain []byte) string {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return GzipPrefix + base64.StdEncoding.EncodeToString(buf.Bytes())
}

// jsonList is a JSON list of n copies of name.
func jsonList(name string, n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + name + `"`)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// The bomb: a 16 MB JSON list, about 25 KB gzipped. It is refused
// while inflating, after at most MaxRecordBytes, never read whole.
func TestRecordBombIsRefusedWithinItsBound(t *testing.T) {
	bomb := gzipRecord(t, jsonList("aaaaaaaaaaaaaaa", 16<<20/18))
	if len(bomb) > 64<<10 {
		t.Fatalf("bomb is %d bytes encoded: the test means a small one", len(bomb))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	users, err := DecodeManaged(bomb)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrRecordTooLarge) || users != nil {
		t.Fatalf("bomb decoded to %d users, err %v; want ErrRecordTooLarge", len(users), err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8*MaxRecordBytes {
		t.Errorf("decoding the bomb allocated %d MiB; the bound is %d MiB decompressed", alloc>>20, MaxRecordBytes>>20)
	}
}

func TestRecordBounds(t *testing.T) {
	// The largest record this tool writes: a full shard of 1-character
	// names (1 MiB of subjects at more than 40 bytes each).
	full := make([]string, (1<<20)/43)
	for i := range full {
		full[i] = string(rune('a' + i%26))
	}
	fewLong := make([]string, 4000)
	for i := range fewLong {
		fewLong[i] = strings.Repeat("x", 200) + fmt.Sprintf("%05d", i)
	}
	tests := []struct {
		name   string
		record string
		users  int // -1: ErrRecordTooLarge
		bad    bool
	}{
		{"a full shard of short names", EncodeManaged(full), 26, false},
		{"a full shard of long names", EncodeManaged(fewLong), -2, false},
		{"too many names", gzipRecord(t, jsonList("u", MaxRecordUsers+1)), -1, false},
		{"too many names, plain", strings.Repeat("u,", MaxRecordUsers+1), -1, false},
		{"encoded value over the annotation limit", `["` + strings.Repeat("a", MaxRecordEncoded) + `"]`, -1, false},
		{"one byte over when inflated", gzipRecord(t, []byte(`["`+strings.Repeat("a", MaxRecordBytes-3)+`"]`)), -1, false},
		{"exactly the bound when inflated", gzipRecord(t, []byte(`["`+strings.Repeat("a", MaxRecordBytes-4)+`"]`)), 1, false},
		{"data after the list", `["a"] ["b"]`, 0, true},
		{"gzipped data after the list", gzipRecord(t, []byte(`["a"],"b"`)), 0, true},
		{"not base64", GzipPrefix + "!!!", 0, true},
		{"not gzip", GzipPrefix + base64.StdEncoding.EncodeToString([]byte("plain")), 0, true},
		{"a list of numbers", `[1,2]`, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			users, err := DecodeManaged(tc.record)
			switch {
			case tc.users == -1:
				if !errors.Is(err, ErrRecordTooLarge) {
					t.Errorf("err = %v, want ErrRecordTooLarge", err)
				}
			case tc.bad:
				if err == nil || errors.Is(err, ErrRecordTooLarge) {
					t.Errorf("err = %v, want a format error", err)
				}
			case err != nil:
				t.Errorf("refused: %v", err)
			case tc.users == -2:
				if len(users) != len(fewLong) {
					t.Errorf("%d users, want %d", len(users), len(fewLong))
				}
			case len(SortedUnique(users)) != tc.users:
				t.Errorf("%d distinct users, want %d", len(SortedUnique(users)), tc.users)
			}
		})
	}
}

// An over-bound record is the binding's error, found when it is planned
// (Owned), not when it is read.
func TestOverBoundRecordIsTheBindingsError(t *testing.T) {
	b := &Binding{Ref: ExecutorRef("team"), Exists: true, Record: gzipRecord(t, jsonList("u", MaxRecordUsers+1))}
	if _, err := b.Owned(); !errors.Is(err, ErrRecordTooLarge) || !strings.Contains(err.Error(), "team") {
		t.Errorf("Owned: %v, want ErrRecordTooLarge naming the binding", err)
	}
	b = &Binding{Managed: []string{"a"}}
	if got, err := b.Owned(); err != nil || len(got) != 1 {
		t.Errorf("a Binding built in code: %v, %v", got, err)
	}
}

// byJSON is what encoding/json makes of a record: the reference the fast
// parser must agree with (names in order, empty ones dropped; an error
// where encoding/json has one).
func byJSON(s string) ([]string, bool) {
	var raw []*string
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, false
	}
	var out []string
	for _, p := range raw {
		if p != nil && *p != "" {
			out = append(out, *p)
		}
	}
	return out, true
}

var listSeeds = []string{
	`[]`, ` [ ] `, `["alice","bob"]`, "[\n \"alice\" ,\t\"bob\"\r\n]\n", `["", "alice", null]`,
	`["al\"ice"]`, `["a\\b"]`, `["\u00e9mile"]`, `["émile"]`, "[\"a\xffb\"]", `["\ud800"]`,
	`["a` + "\x01" + `"]`, `["a\`, `["a"`, `[`, `]`, `["a",]`, `[,"a"]`, `["a" "b"]`, `["a"]x`,
	`["a"] ["b"]`, `[1]`, `[true]`, `[["a"]]`, `[{"a":1}]`, `[nul]`, `[nullx]`, `["a"/]`, `"a"`, ``,
	`["a\/b"]`, `["\t"]`, `["a\u0000b"]`,
}

// The record parser reads every list as encoding/json does: the same
// names, and an error exactly where encoding/json has one.
func TestParseListAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range listSeeds {
		checkParseList(t, s)
	}
}

func FuzzParseList(f *testing.F) {
	for _, s := range listSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > MaxRecordBytes {
			return
		}
		checkParseList(t, s)
	})
}

func checkParseList(t *testing.T, s string) {
	t.Helper()
	want, ok := byJSON(s)
	got, err := parseList(s)
	switch {
	case ok && err != nil:
		t.Errorf("%q: encoding/json reads %q, parseList fails: %v", s, want, err)
	case !ok && err == nil:
		t.Errorf("%q: encoding/json fails, parseList reads %q", s, got)
	case ok && fmt.Sprint(got) != fmt.Sprint(want):
		t.Errorf("%q: parseList reads %q, encoding/json %q", s, got, want)
	}
}

// A full shard's record (about 21,000 users fill one at the default size),
// as a cycle decodes one for each shard of the viewer and index-map unions.
func BenchmarkDecodeManaged20000(b *testing.B) {
	users := make([]string, 20000)
	for i := range users {
		users[i] = fmt.Sprintf("user%06d", i)
	}
	rec := EncodeManaged(users)
	b.ReportAllocs()
	for b.Loop() {
		got, err := DecodeManaged(rec)
		if err != nil || len(got) != len(users) {
			b.Fatalf("decoded %d users, err %v", len(got), err)
		}
	}
}
