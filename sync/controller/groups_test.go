package controller

import (
	"errors"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller/controllertest"
	"reflect"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// A read's failed and missing groups are reported, and only the groups read
// without error are remembered: a failure falls back to what was known.
func TestGroupsNotedAndLearnt(t *testing.T) {
	groups := map[string]*model.Group{
		"ok":      {Name: "ok", Found: true, Members: []string{"alice"}, Reached: []string{"guid-ok"}},
		"missing": {Name: "missing"},
		"failed":  {Name: "failed", Err: errors.New("timeout")},
	}
	read := &pass{res: &ldapsrc.Result{Groups: groups}, pinned: true}
	missing, failed := missingGroups(groups), read.failedGroups()
	if !reflect.DeepEqual(missing, []string{"missing"}) || len(failed) != 1 || failed["failed"] == nil {
		t.Errorf("missing %v, failed %v", missing, failed)
	}

	mem := termMemory{"failed": {"bob"}}
	mem.Remember(groups)
	if want := (termMemory{"ok": {"alice"}, "missing": nil, "failed": {"bob"}}); !reflect.DeepEqual(mem, want) {
		t.Errorf("remembered %v, want %v", mem, want)
	}

	p := poller{changes: &controllertest.Changes{}, inc: incState{reached: map[string][]string{"failed": {"guid-old"}}, failed: map[string]error{}}}
	p.learn(groups)
	if !reflect.DeepEqual(p.inc.reached["ok"], []string{"guid-ok"}) || !reflect.DeepEqual(p.inc.reached["failed"], []string{"guid-old"}) || p.inc.failed["failed"] == nil {
		t.Errorf("polls learnt reached %v, failed %v", p.inc.reached, p.inc.failed)
	}
}
