package kube

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

func TestManagedRoundTrip(t *testing.T) {
	small := []string{"bob", "alice"}
	if v := EncodeManaged(small); v != "alice,bob" {
		t.Errorf("small list encoded as %q", v)
	}
	var big []string
	for i := 0; i < 20000; i++ {
		big = append(big, fmt.Sprintf("user%05d", i))
	}
	for _, in := range [][]string{nil, small, big} {
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
			sortStrings(want)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip of %d users gave %d", len(in), len(got))
		}
	}
	if _, err := DecodeManaged(gzipPrefix + "!!!"); err == nil {
		t.Error("corrupt annotation must be an error, not an empty list")
	}
}

func TestNewSubjects(t *testing.T) {
	group := rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "bob"}
	sa := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "bob", Namespace: "x"}
	cur := []rbacv1.Subject{UserSubject("carol"), group, UserSubject("bob"), sa, UserSubject("carol"),
		{Kind: rbacv1.UserKind, Name: "legacy"}}
	got := NewSubjects(cur, []string{"zed", "alice", "carol"}, []string{"bob"})
	want := []rbacv1.Subject{UserSubject("carol"), group, sa, {Kind: rbacv1.UserKind, Name: "legacy"}, UserSubject("alice"), UserSubject("zed")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func TestNewManaged(t *testing.T) {
	cur := &Binding{Subjects: []rbacv1.Subject{UserSubject("a"), UserSubject("b"), UserSubject("hand")}, Managed: []string{"a", "b", "gone"}}
	got := NewManaged(cur, []string{"c", "hand"}, []string{"b"})
	if !reflect.DeepEqual(got, []string{"a", "c"}) {
		t.Errorf("got %v: keeps owned present users, drops removed and vanished ones, adds new, never claims a hand-added user", got)
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
