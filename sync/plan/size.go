package plan

import (
	"fmt"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

// DefaultShardBytes is the safe size of one binding by the stored-size
// estimate: well under the 1.5 MiB etcd stores in one object by default,
// leaving room for the ownership record (gzipped), the guard's history and
// Run:AI's own metadata. Past it, users go to shards (model.ShardRef).
// About 21,000 users of 8-character names fit. It is the configuration's
// default (kubernetes.bindingShardBytes), which may only lower it.
const DefaultShardBytes = config.DefaultBindingShardBytes

// subjectOverhead is the stored (protobuf) size of one User subject besides
// its name, as measured by the benchmark (about 48 bytes a user with
// 7-character names, subjects being an atomic list in managedFields).
const subjectOverhead = 42

// bindingOverhead is the estimated stored size of a binding's metadata
// and roleRef besides its subjects.
const bindingOverhead = 1024

// userBytes is the estimated stored size of one User subject.
func userBytes(u string) int { return len(u) + subjectOverhead }

// estimateBindingBytes estimates the stored size of a binding holding users.
func estimateBindingBytes(users []string) int {
	n := bindingOverhead
	for _, u := range users {
		n += userBytes(u)
	}
	return n
}

// tooLarge returns an error when the users cannot fit in a binding and
// maxShards shards of limit bytes each.
func tooLarge(users []string, limit, maxShards int) error {
	need := estimateBindingBytes(users) - bindingOverhead
	room := (maxShards + 1) * (limit - bindingOverhead)
	if need > room {
		return fmt.Errorf("the binding would hold %d users (about %.1f MiB), more than it and its %d shards of %.1f MiB each can (etcd stores at most 1.5 MiB in one object): "+
			"raise kubernetes.maxBindingShards (at most 16), or bind a directory group through OIDC group claims instead of its members",
			len(users), float64(need)/(1<<20), maxShards, float64(limit)/(1<<20))
	}
	return nil
}
