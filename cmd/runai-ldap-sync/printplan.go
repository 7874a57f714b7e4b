package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// planJSON is one change in `diff -o json`: a binding's users, or (with
// the projects.* provisioning on) a namespace to create or label, or a
// template object to create or bring back.
type planJSON struct {
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Add       []string `json:"add"`
	Remove    []string `json:"remove"`
	Create    bool     `json:"create"`
	Held      []string `json:"held,omitempty"`
	// HeldAdd are additions the guard holds; ApprovalKey approves exactly
	// what is held, with ApproveCommand.
	HeldAdd        []string `json:"heldAdd,omitempty"`
	ApprovalKey    string   `json:"approvalKey,omitempty"`
	ApproveCommand string   `json:"approveCommand,omitempty"`
	// Adopt become the tool's; Disown are forgotten by the ownership
	// record; Leftovers are kept, neither granted nor owned.
	Adopt     []string `json:"adopt,omitempty"`
	Disown    []string `json:"disown,omitempty"`
	Leftovers []string `json:"leftovers,omitempty"`
	// ApprovalRemoved is an approval annotation on the binding (never read:
	// approvals live in the guard's store) that the write removes.
	ApprovalRemoved string `json:"approvalRemoved,omitempty"`
	// Labels a namespace gets.
	Labels map[string]string `json:"labels,omitempty"`
	// Template: a project template object; Field is the first field that
	// differs from the template, for one changed by hand.
	Template bool   `json:"template,omitempty"`
	Field    string `json:"field,omitempty"`
	// ShardCount is how many bindings (it and its shards) a binding spread
	// over shards has after the plan; Shards are the writes to each, in
	// order (moves last).
	ShardCount int         `json:"shardCount,omitempty"`
	Shards     []shardJSON `json:"shards,omitempty"`
}

// shardJSON is the write to one binding of a sharded binding.
type shardJSON struct {
	Name   string   `json:"name"`
	Create bool     `json:"create,omitempty"`
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
	// MoveOut are removed after every other write succeeded: they moved to
	// another shard.
	MoveOut []string `json:"moveOut,omitempty"`
}

// printPlan writes what a dry-run cycle would change (`diff`), as text
// or, with format "json", as a JSON list.
func printPlan(w io.Writer, rep *controller.Report, format string) error {
	out := planEntries(rep)
	if format == "json" {
		if out == nil {
			out = []planJSON{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(out) == 0 {
		_, err := fmt.Fprintln(w, "no changes")
		return err
	}
	for _, p := range out {
		printEntry(w, p)
	}
	return nil
}

// planEntries lists what a dry-run cycle would change: namespaces first,
// then template objects, then bindings, each sorted.
func planEntries(rep *controller.Report) []planJSON {
	var out []planJSON
	for _, a := range rep.Provision.Namespaces {
		out = append(out, planJSON{Kind: "Namespace", Name: a.Namespace, Add: []string{}, Remove: []string{}, Create: a.Create, Labels: a.Labels})
	}
	for _, t := range rep.Provision.Templates {
		out = append(out, planJSON{Kind: t.Kind, Namespace: t.Namespace, Name: t.Name, Add: []string{}, Remove: []string{},
			Create: t.Create, Template: true, Field: t.Field})
	}
	for _, p := range rep.Plans {
		if !p.HasChanges() && len(p.Held)+len(p.HeldAdd)+len(p.Leftovers) == 0 {
			continue
		}
		pj := planJSON{Kind: p.Ref.Kind, Namespace: p.Ref.Namespace, Name: p.Ref.Name,
			Add: nonNil(p.Add), Remove: nonNil(p.Remove), Create: p.Create, Held: p.Held, HeldAdd: p.HeldAdd,
			Adopt: p.Adopt, Disown: p.Disown, Leftovers: p.Leftovers, ApprovalRemoved: p.StaleApproval}
		if p.ApprovalKey != "" {
			pj.ApprovalKey, pj.ApproveCommand = p.ApprovalKey, p.ApproveCommand
		}
		if p.Shards > 1 || len(p.Moves) > 0 || len(p.Writes) > 0 && p.Writes[0].Ref != p.Ref {
			pj.ShardCount = p.Shards
			for _, w := range p.Writes {
				pj.Shards = append(pj.Shards, shardJSON{Name: w.Ref.Name, Create: w.Create, Add: w.Add, Remove: w.Remove})
			}
			for _, m := range p.Moves {
				pj.Shards = append(pj.Shards, shardJSON{Name: m.Ref.Name, MoveOut: m.Remove})
			}
		}
		out = append(out, pj)
	}
	// Namespaces first, then template objects, then bindings, each sorted.
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ga, gb := group(a), group(b); ga != gb {
			return ga < gb
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out
}

// printEntry writes one entry of the plan as text: its line, its labels,
// a line per user, then its shards and its approval.
func printEntry(w io.Writer, p planJSON) {
	ref := model.Ref{Kind: p.Kind, Namespace: p.Namespace, Name: p.Name}
	fmt.Fprintf(w, "%s%s\n", ref, entrySuffix(p))
	keys := make([]string, 0, len(p.Labels))
	for k := range p.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "+ label %s=%s\n", k, p.Labels[k])
	}
	// One line per user, marked by what happens to them.
	for _, l := range []struct {
		users  []string
		format string
	}{
		{p.Add, "+ %s\n"},
		{p.Remove, "- %s\n"},
		{p.Held, "! %s (removal held by the guard)\n"},
		{p.HeldAdd, "! +%s (addition held by the guard)\n"},
		{p.Adopt, "= %s (granted by the directory, already here: now managed)\n"},
		{p.Disown, "~ %s (gone from the binding: dropped from the ownership record)\n"},
		{p.Leftovers, "? %s (leftover: not granted by the directory, not managed; kept)\n"},
	} {
		for _, u := range l.users {
			fmt.Fprintf(w, l.format, u)
		}
	}
	for _, sh := range p.Shards {
		printShard(w, sh)
	}
	if p.ApprovalRemoved != "" {
		fmt.Fprintf(w, "~ approval %q on the binding removed: approvals are read from the guard's store only\n", p.ApprovalRemoved)
	}
	if p.ApproveCommand != "" {
		fmt.Fprintf(w, "  approve exactly the held changes with: %s\n", p.ApproveCommand)
	}
}

// entrySuffix says what happens to an entry as a whole.
func entrySuffix(p planJSON) string {
	suffix := ""
	switch {
	case p.Kind == "Namespace" && p.Create:
		suffix = " (create)"
	case p.Kind == "Namespace":
		suffix = " (label)"
	case p.Template && p.Create:
		suffix = " (create from the project template)"
	case p.Template:
		suffix = fmt.Sprintf(" (bring back to the project template: %s differs)", p.Field)
	case p.Create:
		suffix = " (create)"
	}
	if p.ShardCount > 1 {
		suffix += fmt.Sprintf(" (%d bindings: it and %d shards)", p.ShardCount, p.ShardCount-1)
	}
	return suffix
}

// printShard writes what the plan's writes do to one shard.
func printShard(w io.Writer, sh shardJSON) {
	if len(sh.MoveOut) > 0 {
		fmt.Fprintf(w, "  shard %s: moves out %s (after the writes above)\n", sh.Name, strings.Join(sh.MoveOut, ", "))
		return
	}
	var parts []string
	for _, u := range sh.Add {
		parts = append(parts, "+ "+u)
	}
	for _, u := range sh.Remove {
		parts = append(parts, "- "+u)
	}
	switch {
	case len(parts) == 0:
		parts = []string{"ownership record or annotations only"}
	case len(parts) > 10:
		// The users are listed above; a shard's share is a count.
		parts = []string{fmt.Sprintf("+%d users, -%d users", len(sh.Add), len(sh.Remove))}
	}
	create := ""
	if sh.Create {
		create = " (create)"
	}
	fmt.Fprintf(w, "  shard %s%s: %s\n", sh.Name, create, strings.Join(parts, ", "))
}

// group orders diff entries: namespaces, template objects, bindings.
func group(p planJSON) int {
	switch {
	case p.Kind == "Namespace":
		return 0
	case p.Template:
		return 1
	}
	return 2
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
