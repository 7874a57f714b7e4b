package main

import (
	"fmt"
	"io"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
)

// printExplanation writes an Explanation as text (`explain`).
func printExplanation(w io.Writer, ex *controller.Explanation) {
	fmt.Fprintf(w, "user %s\n", ex.User)
	for _, p := range ex.Projects {
		fmt.Fprintf(w, "\nproject %s (namespace %s)\n", p.Project, p.Namespace)
		printBinding(w, "executor", p.Executor)
	}
	if ex.Viewer != nil || ex.IndexMap != nil {
		fmt.Fprintln(w)
	}
	if ex.Viewer != nil {
		printBinding(w, "viewer", *ex.Viewer)
	}
	if ex.IndexMap != nil {
		printBinding(w, "index map", *ex.IndexMap)
	}
}

func printBinding(w io.Writer, role string, e controller.BindingExplanation) {
	state := "not granted"
	if e.Granted {
		state = "granted"
	}
	fmt.Fprintf(w, "  %-9s %s: %s\n", role, e.Binding, state)
	for _, v := range e.Via {
		fmt.Fprintf(w, "            via %s\n", v)
	}
	for _, why := range e.Why {
		fmt.Fprintf(w, "            %s\n", why)
	}
	for _, entry := range e.Entries {
		fmt.Fprintf(w, "            entry %s\n", entry)
	}
	holds := "the binding does not hold them"
	switch {
	case e.Leftover:
		holds = "the binding holds them (a leftover: put there by hand and not granted by the directory; kept, remove by hand if unwanted)"
	case e.HandAdded:
		holds = "the binding holds them (added by hand, never removed by runai-ldap-sync)"
	case e.Holds:
		holds = "the binding holds them (added by runai-ldap-sync)"
	}
	if e.Shard != "" && e.Holds {
		holds += ", in its shard " + e.Shard
	}
	fmt.Fprintf(w, "            %s\n", holds)
	if e.Pending != "" {
		fmt.Fprintf(w, "            next cycle: %s\n", e.Pending)
	}
	if e.Error != "" {
		fmt.Fprintf(w, "            left untouched: %s\n", e.Error)
	}
}
