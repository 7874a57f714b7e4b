package model

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The store is bounded: past MaxStateBytes the last known members of the
// largest groups go first (pins stay, Dropped says so); garbage is an
// error, never an empty state.
func TestStateRoundTripAndBound(t *testing.T) {
	st := &State{Bindings: map[string]*BindingState{"RoleBinding/a/b": {Known: true,
		History: []GuardEntry{{At: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), Added: 3, AddedBy: map[string]int{"g": 3}}}}},
		Groups: map[string]*GroupState{"small": {ID: "id1", Members: []string{"alice"}}}}
	// Incompressible member names, so the state outgrows the store.
	for g := range 3 {
		var members []string
		for i := range 40000 {
			members = append(members, fmt.Sprintf("%x", uint64(i)*0x9E3779B97F4A7C15+uint64(g)))
		}
		st.Groups[fmt.Sprintf("big%d", g)] = &GroupState{ID: "x", Members: members}
	}
	data, dropped, err := EncodeState(st)
	if err != nil || len(data) > MaxStateBytes || len(dropped) == 0 {
		t.Fatalf("encode: %d bytes, dropped %v, %v", len(data), dropped, err)
	}
	for _, n := range dropped {
		if !strings.HasPrefix(n, "group big") {
			t.Errorf("dropped %s before the large groups", n)
		}
	}
	back, err := DecodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	if g := back.Groups["small"]; g == nil || g.ID != "id1" || len(g.Members) != 1 || g.Dropped {
		t.Errorf("small group: %+v", g)
	}
	if g := back.Groups[strings.TrimPrefix(dropped[0], "group ")]; !g.Dropped || len(g.Members) != 0 || g.ID != "x" {
		t.Errorf("dropped group keeps its pin, loses its members, says so: %+v", g)
	}
	if b := back.Bindings["RoleBinding/a/b"]; b == nil || !b.Known || b.History[0].AddedBy["g"] != 3 {
		t.Errorf("binding state: %+v", b)
	}
	for _, bad := range [][]byte{[]byte("not gzip"), data[:len(data)/2]} {
		if _, err := DecodeState(bad); err == nil {
			t.Errorf("%d bytes of garbage decoded", len(bad))
		}
	}
}
