package model

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestManagedRoundTrip(t *testing.T) {
	small := []string{"bob", "alice"}
	if v := EncodeManaged(small); v != `["alice","bob"]` {
		t.Errorf("small list encoded as %q", v)
	}
	var big []string
	for i := 0; i < 20000; i++ {
		big = append(big, fmt.Sprintf("user%05d", i))
	}
	// Any valid Kubernetes user name round-trips: commas, spaces, quotes,
	// brackets, non-ASCII, a leading '['.
	odd := []string{"Smith, John", "o'brien", `say "hi"`, "jürgen", "张伟", "[admin]", "a,b,c", " padded ", "oidc:alice@example.com"}
	for _, in := range [][]string{nil, small, big, odd, append(append([]string(nil), big...), odd...)} {
		enc := EncodeManaged(in)
		if len(enc) > 128<<10 {
			t.Errorf("%d users encode to %d bytes, over the annotation budget", len(in), len(enc))
		}
		got, err := DecodeManaged(enc)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		want := append([]string(nil), in...)
		if len(want) == 0 {
			want = nil
		} else {
			sort.Strings(want)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip of %d users gave %d", len(in), len(got))
		}
	}
	for _, bad := range []string{GzipPrefix + "!!!", `["alice",`, `[1,2]`, `["a"]x`} {
		if _, err := DecodeManaged(bad); err == nil {
			t.Errorf("corrupt annotation %q must be an error, not a guess", bad)
		}
	}
}

// Records written by earlier versions (names joined with commas, gzipped
// when large) still read.
func TestManagedReadsOldRecords(t *testing.T) {
	got, err := DecodeManaged("alice, bob,carol,")
	if err != nil || !reflect.DeepEqual(got, []string{"alice", "bob", "carol"}) {
		t.Errorf("old record: %v, %v", got, err)
	}
	var old []string
	for i := 0; i < 2000; i++ {
		old = append(old, fmt.Sprintf("user%05d", i))
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(strings.Join(old, ",")))
	_ = zw.Close()
	got, err = DecodeManaged(GzipPrefix + base64.StdEncoding.EncodeToString(buf.Bytes()))
	if err != nil || !reflect.DeepEqual(got, old) {
		t.Errorf("old gzipped record: %d users, %v", len(got), err)
	}
}

func TestNewSubjects(t *testing.T) {
	group := Subject{APIGroup: RBACGroup, Kind: KindGroup, Name: "bob"}
	sa := Subject{Kind: KindServiceAccount, Name: "bob", Namespace: "x"}
	cur := []Subject{UserSubject("carol"), group, UserSubject("bob"), sa, UserSubject("carol"),
		{Kind: KindUser, Name: "legacy"}}
	got := NewSubjects(cur, []string{"zed", "alice", "carol"}, []string{"bob"})
	want := []Subject{UserSubject("carol"), group, sa, {Kind: KindUser, Name: "legacy"}, UserSubject("alice"), UserSubject("zed")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func TestNewManaged(t *testing.T) {
	cur := &Binding{Subjects: []Subject{UserSubject("a"), UserSubject("b"), UserSubject("hand"), UserSubject("kept")}, Managed: []string{"a", "b", "gone"}}
	got := NewManaged(cur, Change{Add: []string{"c", "hand"}, Remove: []string{"b"}})
	if !reflect.DeepEqual(got, []string{"a", "c"}) {
		t.Errorf("got %v: keeps owned present users, drops removed and vanished ones, adds new, never claims a hand-added user", got)
	}
	got = NewManaged(cur, Change{Own: []string{"kept", "absent"}})
	if !reflect.DeepEqual(got, []string{"a", "b", "kept"}) {
		t.Errorf("got %v: Own claims users the binding holds, and only those", got)
	}
}

func TestRefString(t *testing.T) {
	if s := ExecutorRef("ns").String(); !strings.Contains(s, "ns/"+ExecutorBinding) {
		t.Error(s)
	}
	if ExpectedRoleRef(ViewerBinding).Name != ViewerRole || ExpectedRoleRef(IndexMapBinding).Name != IndexMapRole {
		t.Error("role refs")
	}
}
