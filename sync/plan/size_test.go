package plan

import (
	"fmt"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

func names(from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("u%07d", i)) // 8 characters
	}
	return out
}

// The default size math: a binding of DefaultShardBytes holds about
// 21,000 users of 8-character names, well under etcd's 1.5 MiB, and the
// documented maximum of 16 shards holds some 356,000 per role.
func TestShardSizeMath(t *testing.T) {
	perShard := (DefaultShardBytes - bindingOverhead) / userBytes("u0000000")
	if perShard != 20951 {
		t.Errorf("users of 8 characters per binding = %d, want 20951 (docs say about 21,000)", perShard)
	}
	// The estimate stays well under etcd's limit: 1.5 MiB at about 48
	// bytes a measured subject is ~32,000 users.
	if float64(DefaultShardBytes) > 0.7*float64(3<<19) {
		t.Errorf("shard size %d is not well under etcd's 1.5 MiB", DefaultShardBytes)
	}
	if err := tooLarge(names(0, perShard), DefaultShardBytes, 0); err != nil {
		t.Errorf("%d users must fit one binding: %v", perShard, err)
	}
	if err := tooLarge(names(0, perShard+1), DefaultShardBytes, 0); err == nil {
		t.Errorf("%d users must not fit one binding", perShard+1)
	}
	all := perShard * (model.MaxShards + 1)
	if all < 350000 {
		t.Errorf("the documented maximum holds only %d users", all)
	}
	if err := tooLarge(names(0, all), DefaultShardBytes, model.MaxShards); err != nil {
		t.Errorf("%d users must fit 17 bindings: %v", all, err)
	}
	if err := tooLarge(names(0, all+1), DefaultShardBytes, model.MaxShards); err == nil {
		t.Errorf("%d users must be refused before the API server refuses them", all+1)
	}
}

func TestShardLimitMatchesConfig(t *testing.T) {
	if config.MaxBindingShardsLimit != model.MaxShards {
		t.Errorf("config allows %d shards, kube (and deploy/) %d", config.MaxBindingShardsLimit, model.MaxShards)
	}
}
