package plan

import "fmt"

// MaxBindingBytes bounds the estimated stored size of a binding this tool
// writes: etcd stores at most 1.5 MiB per object by default. A binding past
// that cannot be written, and trying every cycle would only load the API
// server.
const MaxBindingBytes = 3 << 19

// subjectOverhead is the stored (protobuf) size of one User subject besides
// its name, as measured by the benchmark (about 48 bytes a user with
// 7-character names, subjects being an atomic list in managedFields).
const subjectOverhead = 42

// estimateBindingBytes estimates the stored size of a binding holding users.
func estimateBindingBytes(users []string) int {
	n := 1024 // metadata, roleRef
	for _, u := range users {
		n += len(u) + subjectOverhead
	}
	return n
}

// tooLarge returns an error when a binding with these users could not be
// stored by Kubernetes.
func tooLarge(users []string) error {
	if size := estimateBindingBytes(users); size > MaxBindingBytes {
		return fmt.Errorf("the binding would hold %d users (about %.1f MiB), more than Kubernetes stores in one object (etcd's limit is 1.5 MiB): "+
			"bind a directory group through OIDC group claims instead of its members, or split the groups", len(users), float64(size)/(1<<20))
	}
	return nil
}
