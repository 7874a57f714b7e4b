package plan

import (
	"errors"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

func TestCheckPins(t *testing.T) {
	st := &model.State{Groups: map[string]*model.GroupState{
		"g": {ID: "guid-1", DN: "CN=g,OU=Groups", Members: []string{"vera"}},
		"h": {ID: "guid-2", Members: []string{"hal"}},
	}}
	groups := map[string]*model.Group{
		"g": {Name: "g", Found: true, DN: "CN=g,OU=Sandbox", Identity: "guid-9", Members: []string{"mallory"}},
		"h": {Name: "h", Found: true, Identity: "guid-2", Members: []string{"hal", "hank"}},
		"n": {Name: "n", Found: true, Identity: "guid-3", Members: []string{"new"}}, // never pinned
	}
	checked, holds, used := CheckPins(groups, st, nil, t0, time.Hour)
	if len(holds) != 1 || holds[0].Group != "g" || holds[0].Key != PinKey("g", "guid-9") || len(used) != 0 {
		t.Fatalf("holds %+v used %v", holds, used)
	}
	if g := checked["g"]; !errors.Is(g.Err, ErrPinChanged) || g.Members != nil {
		t.Errorf("held group: %+v", g)
	}
	if groups["g"].Err != nil {
		t.Error("input changed")
	}
	if checked["h"].Err != nil || checked["n"].Err != nil {
		t.Error("unchanged or new groups held")
	}
	// The held group feeds the union with its last known members only.
	d := byRef(DesiredState([]Project{{"p", "runai-p"}}, testGroupsOnly("g"), "runai", checked, LastKnown(st)))[model.ViewerRef()]
	if len(d.Users) != 0 || !eq(d.Keep, []string{"vera"}) {
		t.Errorf("viewer: %+v", d)
	}
	// Approved: passes, and the approval is used.
	ok := map[string]string{PinKey("g", "guid-9"): "ok"}
	st.ApprovalsSeen = map[string]time.Time{PinKey("g", "guid-9"): t0.Add(-2 * time.Hour)}
	if _, holds, _ := CheckPins(groups, st, ok, t0, time.Hour); len(holds) != 1 {
		t.Errorf("an approval older than its TTL approved a pin")
	}
	st.ApprovalsSeen = nil
	checked, holds, used = CheckPins(groups, st, ok, t0, time.Hour)
	if len(holds) != 0 || checked["g"].Err != nil || !eq(used, []string{PinKey("g", "guid-9")}) {
		t.Errorf("approved: holds %+v used %v", holds, used)
	}
	RememberGroups(st, checked)
	if g := st.Groups["g"]; g.ID != "guid-9" || !eq(g.Members, []string{"mallory"}) {
		t.Errorf("remembered: %+v", g)
	}
	// A failed lookup keeps the old record.
	RememberGroups(st, map[string]*model.Group{"h": {Name: "h", Err: errors.New("down")}})
	if g := st.Groups["h"]; g.ID != "guid-2" || !eq(g.Members, []string{"hal", "hank"}) {
		t.Errorf("failed lookup changed the record: %+v", g)
	}
	st.Groups["h"].Dropped = true
	if _, ok := LastKnown(st)["h"]; ok {
		t.Error("dropped members used as last known")
	}
}

// testGroupsOnly configures one global viewers group.
func testGroupsOnly(name string) config.Groups { return config.Groups{GlobalViewers: []string{name}} }
