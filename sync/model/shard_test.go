package model

import "testing"

func TestShardNames(t *testing.T) {
	exec := ExecutorRef("runai-a")
	for i, want := range map[int]string{0: ExecutorBinding, 1: ExecutorBinding + "-1", 16: ExecutorBinding + "-16"} {
		r := ShardRef(exec, i)
		if r.Name != want || r.Namespace != "runai-a" || r.Kind != KindRoleBinding {
			t.Errorf("ShardRef(%d) = %v", i, r)
		}
		base, n, ok := ShardBase(r)
		if !ok || base != exec || n != i || (i > 0) != IsShard(r) {
			t.Errorf("ShardBase(%v) = %v %d %v", r, base, n, ok)
		}
		if ExpectedRoleRef(r.Name).Name != ExecutorRole {
			t.Errorf("roleRef of %s: %v", r.Name, ExpectedRoleRef(r.Name))
		}
	}
	// Only <name>-1 … <name>-16, of the right kind, are shards.
	for _, name := range []string{ExecutorBinding + "-0", ExecutorBinding + "-17", ExecutorBinding + "-01", ExecutorBinding + "-x",
		ExecutorBinding + "-", ExecutorBinding + "-1-1", ExecutorBinding + "-+1", "other-1"} {
		if _, _, ok := ShardBase(Ref{Kind: KindRoleBinding, Namespace: "runai-a", Name: name}); ok {
			t.Errorf("%s taken for a shard", name)
		}
	}
	if IsShard(Ref{Kind: KindRoleBinding, Name: ViewerBinding + "-1"}) || IsShard(Ref{Kind: KindClusterRoleBinding, Name: ExecutorBinding + "-1"}) ||
		!IsShard(Ref{Kind: KindClusterRoleBinding, Name: ViewerBinding + "-2"}) {
		t.Error("a shard has the kind of the binding it extends")
	}
	if n := ShardNames(IndexMapBinding); len(n) != MaxShards || n[0] != IndexMapBinding+"-1" || n[15] != IndexMapBinding+"-16" {
		t.Errorf("ShardNames = %v", n)
	}
}
