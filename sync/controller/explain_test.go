package controller

import (
	"context"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// explain looks at every shard: a user held by a shard holds the binding.
func TestExplainSeesShards(t *testing.T) {
	s, cl, _, _, _ := shardedFixture(t)
	viewer := model.ViewerRef()
	var inShard2 string
	for _, u := range cl.Users(model.ShardRef(viewer, 2)) {
		inShard2 = u
	}
	if inShard2 == "" {
		t.Fatal("shard 2 is empty")
	}
	ex, err := s.Explain(context.Background(), inShard2, "")
	if err != nil {
		t.Fatal(err)
	}
	if ex.Viewer == nil || !ex.Viewer.Holds || ex.Viewer.HandAdded || ex.Viewer.Shard != model.ViewerBinding+"-2" {
		t.Errorf("explain %s: %+v", inShard2, ex.Viewer)
	}
}
