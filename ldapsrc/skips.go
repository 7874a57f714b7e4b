package ldapsrc

// maxSkipSamples is how many DNs per reason the log line shows.
const maxSkipSamples = 5

// skipTally counts the member entries one resolution skips, by reason,
// once per entry: one disabled user in ten groups counts once.
type skipTally struct {
	// seen holds the normalised DNs counted per reason.
	seen map[string]map[string]struct{}
	// samples keeps the first few DNs per reason, as the directory wrote them.
	samples map[string][]string
}

func newSkipTally() *skipTally {
	return &skipTally{seen: map[string]map[string]struct{}{}, samples: map[string][]string{}}
}

// add counts dn as skipped for reason, unless it already is.
func (t *skipTally) add(reason, dn string) {
	m := t.seen[reason]
	if m == nil {
		m = map[string]struct{}{}
		t.seen[reason] = m
	}
	key := normalizeDN(dn)
	if _, ok := m[key]; ok {
		return
	}
	m[key] = struct{}{}
	if len(t.samples[reason]) < maxSkipSamples {
		t.samples[reason] = append(t.samples[reason], dn)
	}
}

// take adds a user to a member set, or counts why it cannot be one.
func (t *skipTally) take(u *user, into map[string]struct{}) {
	if u.skip != "" {
		t.add(u.skip, u.dn)
		return
	}
	into[u.id] = struct{}{}
}

// counts returns the number of entries skipped per reason.
func (t *skipTally) counts() map[string]int {
	out := make(map[string]int, len(t.seen))
	for reason, dns := range t.seen {
		out[reason] = len(dns)
	}
	return out
}
