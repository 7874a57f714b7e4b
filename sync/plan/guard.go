package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// HistoryAnnotation keeps the guard's window on the binding itself: when,
// and how many users, the tool removed and added. On the binding it
// survives restarts and leader changes, is shared by cycles, polls and
// repairs, and keeps the plan a pure function of the binding.
const HistoryAnnotation = "runai-ldap-sync.github.io/guard-history"

// HistoryEntry is one write the guard counts.
type HistoryEntry struct {
	// At is rounded up to the window's granularity, so entries merge and
	// expire no earlier than the writes they count.
	At      time.Time `json:"at"`
	Removed int       `json:"removed,omitempty"`
	Added   int       `json:"added,omitempty"`
}

// historySlots bounds the entries one window keeps (they merge by slot).
const historySlots = 60

// slot is the granularity of entries in a window.
func slot(window time.Duration) time.Duration {
	return max(window/historySlots, time.Second)
}

// decodeHistory reads the annotation and keeps the entries inside the
// window ending at now. A value that cannot be read counts as empty: it
// guards against a runaway source, not against whoever can edit the
// binding (they can remove users by hand anyway).
func decodeHistory(v string, now time.Time, window time.Duration) []HistoryEntry {
	if v == "" || window <= 0 {
		return nil
	}
	var all []HistoryEntry
	if err := json.Unmarshal([]byte(v), &all); err != nil {
		return nil
	}
	var out []HistoryEntry
	for _, e := range all {
		if e.At.After(now.Add(-window)) && e.Removed >= 0 && e.Added >= 0 {
			out = append(out, e)
		}
	}
	return out
}

// windowTotals sums a window's removals and additions.
func windowTotals(h []HistoryEntry) (removed, added int) {
	for _, e := range h {
		removed += e.Removed
		added += e.Added
	}
	return removed, added
}

// recordHistory adds a write to the window and encodes it.
func recordHistory(h []HistoryEntry, now time.Time, window time.Duration, removed, added int) string {
	s := slot(window)
	at := now.Truncate(s)
	if at.Before(now) {
		at = at.Add(s)
	}
	at = at.UTC()
	out := append([]HistoryEntry(nil), h...)
	merged := false
	for i := range out {
		if out[i].At.Equal(at) {
			out[i].Removed += removed
			out[i].Added += added
			merged = true
		}
	}
	if !merged {
		out = append(out, HistoryEntry{At: at, Removed: removed, Added: added})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	raw, _ := json.Marshal(out) // plain structs always encode
	return string(raw)
}

// removalHold says why removing n of the base users the tool manages must
// be held, or "", counting the window's earlier removals: their total is
// measured against the share and count limits, and against the users
// managed when the window began (base plus those removed since).
func removalHold(n, base, windowRemoved int, g config.Guard) string {
	total, whole := n+windowRemoved, base+windowRemoved
	switch {
	case g.AllowEmptyBelow > 0 && whole < g.AllowEmptyBelow:
		return ""
	case n >= base:
		return HoldRemovesAll
	case total > g.MaxRemoveCount:
		return HoldTooMany
	case total*100 > g.MaxRemovePercent*whole:
		return HoldTooLarge
	}
	return ""
}

// ApprovalKey is the value of ApproveAnnotation that approves exactly
// these held removals and additions on this binding, and nothing else.
func ApprovalKey(ref model.Ref, remove, add []string) string {
	h := sha256.New()
	h.Write([]byte(ref.String() + "\n"))
	for _, u := range sortedCopy(remove) {
		h.Write([]byte("-" + u + "\n"))
	}
	for _, u := range sortedCopy(add) {
		h.Write([]byte("+" + u + "\n"))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

func sortedCopy(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

// ApproveCommand is the kubectl command that sets the approval key on ref.
func ApproveCommand(ref model.Ref, key string) string {
	if ref.Kind == model.KindClusterRoleBinding {
		return fmt.Sprintf("kubectl annotate --overwrite clusterrolebinding %s %s=%s", ref.Name, ApproveAnnotation, key)
	}
	return fmt.Sprintf("kubectl -n %s annotate --overwrite rolebinding %s %s=%s", ref.Namespace, ref.Name, ApproveAnnotation, key)
}
