package model

import (
	"strconv"
	"strings"
)

// A binding whose subject list would be too large for one object is spread
// over shards: more bindings to the same role, named <name>-1 … <name>-N.
// The first binding keeps Run:AI's name. Kubernetes grants a role through
// any binding that names it, so the union of the shards is what counts.

// MaxShards is the most shards after the first binding that this tool ever
// writes: the RBAC rules and the admission policy in deploy/ name exactly
// <name>-1 … <name>-16 (about 21,000 users of 8-character names a shard,
// so some 360,000 users per role). kubernetes.maxBindingShards lowers it.
const MaxShards = 16

// ShardOfLabel marks a shard (not the first binding) with the name of the
// binding it extends; shards are found by it.
const ShardOfLabel = "runai-ldap-sync.github.io/shard-of"

// ShardRef names the i-th shard of a binding; 0 is the binding itself.
func ShardRef(base Ref, i int) Ref {
	if i == 0 {
		return base
	}
	base.Name = base.Name + "-" + strconv.Itoa(i)
	return base
}

// ShardBase returns the binding a shard extends and its index (0 for a
// managed binding itself), or ok false for any other name. Only indexes
// 1..MaxShards are shards: any other name is no business of ours.
func ShardBase(ref Ref) (base Ref, index int, ok bool) {
	for _, name := range []string{ViewerBinding, ExecutorBinding, IndexMapBinding} {
		if ref.Name == name {
			return ref, 0, true
		}
		rest, found := strings.CutPrefix(ref.Name, name+"-")
		if !found || rest == "" || rest[0] == '0' {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 || n > MaxShards || strconv.Itoa(n) != rest {
			continue
		}
		base = ref
		base.Name = name
		return base, n, true
	}
	return Ref{}, 0, false
}

// ShardNames lists every name the binding name may have as a shard,
// <name>-1 … <name>-MaxShards: what the RBAC rules must allow.
func ShardNames(name string) []string {
	out := make([]string, 0, MaxShards)
	for i := 1; i <= MaxShards; i++ {
		out = append(out, name+"-"+strconv.Itoa(i))
	}
	return out
}

// IsShard reports whether ref names a shard (index 1 or more) of a managed
// binding of the right kind.
func IsShard(ref Ref) bool {
	base, i, ok := ShardBase(ref)
	if !ok || i == 0 {
		return false
	}
	if base.Name == ViewerBinding {
		return ref.Kind == KindClusterRoleBinding
	}
	return ref.Kind == KindRoleBinding
}
