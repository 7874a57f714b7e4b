package ldapsrc

import (
	"strings"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// traced is a member entry seen while resolving, before paths are known.
type traced struct {
	dn, rawID, id, skip, identity string
}

// tracer collects, per group, the nesting graph and the member entries.
type tracer struct {
	edges   map[string][]string // normalised group DN -> member DNs
	names   map[string]string   // normalised group DN -> display name
	entries []traced
}

func newTracer() *tracer {
	return &tracer{edges: map[string][]string{}, names: map[string]string{}}
}

func (t *tracer) group(dn, name string, members []string) {
	if t == nil {
		return
	}
	key := normalizeDN(dn)
	t.edges[key] = append(t.edges[key], members...)
	if name == "" {
		name = rdnValue(dn)
	}
	t.names[key] = name
}

func (t *tracer) entry(dn, rawID, id, skip, identity string) {
	if t == nil {
		return
	}
	t.entries = append(t.entries, traced{dn: dn, rawID: rawID, id: id, skip: skip, identity: identity})
}

// memberships walks the graph from the top group and returns, per member
// entry recorded, the shortest path of groups that reaches it.
func (t *tracer) memberships(topDN, topName string) []model.Membership {
	type step struct {
		key  string
		path []string
	}
	top := normalizeDN(topDN)
	paths := map[string][]string{}
	visited := map[string]bool{top: true}
	queue := []step{{top, []string{topName}}}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, m := range t.edges[s.key] {
			k := normalizeDN(m)
			if _, ok := paths[k]; !ok {
				paths[k] = s.path
			}
			if _, isGroup := t.edges[k]; isGroup && !visited[k] {
				visited[k] = true
				queue = append(queue, step{k, append(append([]string(nil), s.path...), t.names[k])})
			}
		}
	}
	out := make([]model.Membership, 0, len(t.entries))
	done := map[string]bool{}
	for _, e := range t.entries {
		if k := normalizeDN(e.dn); done[k] {
			continue // reached through several groups: the shortest path is enough
		} else {
			done[k] = true
		}
		p, ok := paths[normalizeDN(e.dn)]
		if !ok {
			p = []string{topName} // reached through a group we could not see
		}
		out = append(out, model.Membership{RawID: e.rawID, ID: e.id, DN: e.dn, Path: p, Skip: e.skip, Identity: IdentityLabel(e.identity)})
	}
	return out
}

// rdnValue is the value of a DN's first RDN ("CN=team,OU=x" -> "team").
func rdnValue(dn string) string {
	first, _, _ := strings.Cut(dn, ",")
	_, v, ok := strings.Cut(first, "=")
	if !ok {
		return dn
	}
	return strings.TrimSpace(v)
}
