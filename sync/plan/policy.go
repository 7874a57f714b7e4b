package plan

import (
	"sort"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

// classified is the policy stage's answer: the present users the policy
// may remove, and how many users the tool manages (the base the guard's
// share is measured against).
type classified struct {
	candidates []string
	managed    int
}

// classify sorts the present users by the policy: removal candidates,
// adopted users (policy sync, ownership.adopt, and only in a binding the
// store does not know yet: adoption is for migration, so a user put by
// hand into a binding the tool manages stays a human's) and leftovers.
// keep are users a failed group may grant: never candidates.
func classify(p *BindingPlan, present, want, keep, ours map[string]struct{}, opts PlanOptions, known bool) classified {
	p.adoptAdds = opts.Policy == config.PolicySync && opts.Adopt && !known
	var c classified
	for u := range present {
		_, wanted := want[u]
		_, mine := ours[u]
		_, kept := keep[u]
		switch {
		case opts.Policy == config.PolicyAuthoritative || mine && opts.Policy != config.PolicyUpsertOnly:
			c.managed++
			if !wanted && kept {
				p.Kept = append(p.Kept, u)
			} else if !wanted {
				c.candidates = append(c.candidates, u)
			}
		case mine:
			// upsert-only: never removed, not counted.
		case wanted && p.adoptAdds:
			// A hand-kept user the directory vouches for, in a binding the
			// tool takes over: ours from now on.
			p.Adopt = append(p.Adopt, u)
			c.managed++
		case !wanted:
			p.Leftovers = append(p.Leftovers, u)
		}
	}
	sort.Strings(c.candidates)
	sort.Strings(p.Adopt)
	sort.Strings(p.Leftovers)
	sort.Strings(p.Kept)
	return c
}
