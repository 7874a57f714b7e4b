package ldapsrc

import (
	"fmt"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"reflect"
	"testing"
)

func TestSkipTallyCountsAnEntryOncePerReason(t *testing.T) {
	s := newSkipTally()
	s.add(model.SkipDisabled, "CN=Bob,OU=People,DC=example,DC=com")
	s.add(model.SkipDisabled, "cn=bob, ou=people,dc=EXAMPLE,dc=com") // the same entry, spelt otherwise
	s.add(model.SkipComputer, "CN=Bob,OU=People,DC=example,DC=com")
	for i := 0; i < maxSkipSamples+2; i++ {
		s.add(model.SkipForeign, fmt.Sprintf("CN=S-1-5-21-%d,CN=ForeignSecurityPrincipals,DC=example,DC=com", i))
	}
	members := map[string]struct{}{}
	s.take(&user{id: "alice", dn: "CN=Alice,DC=example,DC=com"}, members)
	s.take(&user{id: "carol", dn: "CN=Carol,DC=example,DC=com", skip: model.SkipDisabled}, members)

	want := map[string]int{model.SkipDisabled: 2, model.SkipComputer: 1, model.SkipForeign: maxSkipSamples + 2}
	if got := s.counts(); !reflect.DeepEqual(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	if _, ok := members["alice"]; !ok || len(members) != 1 {
		t.Errorf("members %v, want alice only", members)
	}
	if got := s.samples[model.SkipDisabled]; len(got) != 2 || got[0] != "CN=Bob,OU=People,DC=example,DC=com" {
		t.Errorf("samples %q: want each entry once, as first written", got)
	}
	if n := len(s.samples[model.SkipForeign]); n != maxSkipSamples {
		t.Errorf("%d samples kept, want %d", n, maxSkipSamples)
	}
}
