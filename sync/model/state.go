package model

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// The guard's state lives in one ConfigMap the daemon owns in the Run:AI
// namespace, never on the bindings: a project's namespace admin can edit
// or delete a binding, but not write in the Run:AI namespace (RBAC), and
// the admission policy lets only the daemon write the state itself. So
// deleting a binding resets no window, and no project admin can approve
// their own burst.
const (
	// StateConfigMap is the store's name (in kubernetes.runaiNamespace).
	StateConfigMap = "runai-ldap-sync-state"

	// ApprovalPrefix starts the annotation that approves one held change:
	// ApprovalPrefix + the approval key's hex digits; the value is free
	// text (who approved, the binding).
	ApprovalPrefix = "approve.runai-ldap-sync.github.io/"
	// MaxStateBytes bounds the stored state (a ConfigMap holds 1 MiB, its
	// metadata and the approvals included).
	MaxStateBytes = 900 << 10
	// ApprovalScheme starts every approval key (plan.ApprovalKey); the
	// annotation name holds the rest.
	ApprovalScheme = "sha256:"
	// maxStateJSON bounds the decompressed state a read accepts.
	maxStateJSON = 256 << 20
)

// State is what the guard remembers across cycles, restarts and
// leadership terms.
type State struct {
	// Bindings by Ref.String().
	Bindings map[string]*BindingState `json:"bindings,omitempty"`
	// Groups by configured name (after {project} expansion).
	Groups map[string]*GroupState `json:"groups,omitempty"`
	// ApprovalsSeen is when each approval in the store was first seen: one
	// unused for longer than ApprovalTTL is removed, never waiting for a
	// later change it happens to match.
	ApprovalsSeen map[string]time.Time `json:"approvalsSeen,omitempty"`
}

// ApprovalTTL is how long an approval that matches nothing held stays: the
// guard's window, at least an hour.
func ApprovalTTL(window time.Duration) time.Duration { return max(window, time.Hour) }

// BindingState is one logical binding's guard state.
type BindingState struct {
	// History is the guard's window: what the tool removed and added, and
	// through which group.
	History []GuardEntry `json:"history,omitempty"`
	// Known: the tool has planned this binding before. Users put in it by
	// hand from then on are never adopted (ownership.adopt is for the
	// migration of a binding the tool takes over).
	Known bool `json:"known,omitempty"`
	// Granted are the users the tool granted here (its ownership record,
	// kept where the binding's own admin cannot write): adding one back
	// after a hand edit or a deletion restores access and is no burst.
	Granted []string `json:"granted,omitempty"`
	// Dropped: Granted was not kept because the store was full; every
	// addition then counts as new.
	Dropped bool `json:"dropped,omitempty"`
}

// GuardEntry is one slot of a guard window.
type GuardEntry struct {
	// At is rounded up to the window's granularity, so entries merge and
	// expire no earlier than the writes they count.
	At      time.Time `json:"at"`
	Removed int       `json:"removed,omitempty"`
	Added   int       `json:"added,omitempty"`
	// AddedBy splits Added by the configured group that brought the users;
	// AnyGroup counts additions attributed to no single group kept.
	AddedBy map[string]int `json:"addedBy,omitempty"`
}

// AnyGroup in GuardEntry.AddedBy counts against every group.
const AnyGroup = "*"

// GroupState is what the store keeps of one configured group.
type GroupState struct {
	// ID is the pinned identity (objectGUID, entryUUID) of the entry the
	// name resolved to; a different one is held until approved.
	ID string `json:"id,omitempty"`
	DN string `json:"dn,omitempty"`
	// Members are the last known members, used when a lookup fails.
	Members []string `json:"members,omitempty"`
	// Dropped: Members were not kept because the store was full; a failed
	// lookup then holds every removal of the bindings the group feeds.
	Dropped bool `json:"dropped,omitempty"`
}

// StateSnapshot is the store as read (kube.StateStore).
type StateSnapshot struct {
	State State
	// Approvals are the approval annotations: key ("sha256:<hex>") -> note.
	Approvals map[string]string
	// Exists is false before the first write.
	Exists bool
}

// ErrStateFull means the state does not fit the store even without any
// group's last known members.
var ErrStateFull = errors.New("guard state store is full")

// EncodeState gzips the state's JSON, within MaxStateBytes: past it, the
// longest lists that only save work or approvals — last known members of
// groups, users granted per binding — are dropped (Dropped set) until it
// fits. It returns what was dropped ("group NAME", "binding REF"); the
// state is changed in place.
func EncodeState(st *State) ([]byte, []string, error) {
	out, err := gzipJSON(st)
	if err != nil || len(out) <= MaxStateBytes {
		return out, nil, err
	}
	type list struct {
		name string
		n    int
		drop func()
	}
	var lists []list
	for n, g := range st.Groups {
		if len(g.Members) > 0 {
			lists = append(lists, list{"group " + n, len(g.Members), func() { g.Members, g.Dropped = nil, true }})
		}
	}
	for n, b := range st.Bindings {
		if len(b.Granted) > 0 {
			lists = append(lists, list{"binding " + n, len(b.Granted), func() { b.Granted, b.Dropped = nil, true }})
		}
	}
	sort.Slice(lists, func(i, j int) bool {
		return lists[i].n > lists[j].n || lists[i].n == lists[j].n && lists[i].name < lists[j].name
	})
	var dropped []string
	for step := 1; len(lists) > 0; step *= 2 {
		k := min(step, len(lists))
		for _, l := range lists[:k] {
			l.drop()
			dropped = append(dropped, l.name)
		}
		lists = lists[k:]
		if out, err = gzipJSON(st); err != nil || len(out) <= MaxStateBytes {
			return out, dropped, err
		}
	}
	return nil, dropped, fmt.Errorf("%w: %d bytes compressed even without any member list (limit %d): "+
		"lower guard.window, or split projects over several installations", ErrStateFull, len(out), MaxStateBytes)
}

func gzipJSON(st *State) ([]byte, error) {
	raw, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode guard state: %w", err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(raw)
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress guard state: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeState reads what EncodeState wrote. Empty input is an empty state.
func DecodeState(data []byte) (State, error) {
	var st State
	if len(data) == 0 {
		return st, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return st, fmt.Errorf("guard state: bad gzip: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxStateJSON+1))
	if err != nil {
		return st, fmt.Errorf("guard state: bad gzip: %w", err)
	}
	if len(raw) > maxStateJSON {
		return st, fmt.Errorf("guard state: over %d bytes decompressed", maxStateJSON)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("guard state: not the JSON this version writes: %w", err)
	}
	return st, nil
}

// ApproveCommand is the kubectl command that records an approval key in
// the store of namespace ns.
func ApproveCommand(ns, key, note string) string {
	return fmt.Sprintf("kubectl -n %s annotate configmap %s %s%s=%q", ns, StateConfigMap, ApprovalPrefix, strings.TrimPrefix(key, ApprovalScheme), note)
}
