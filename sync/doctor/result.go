// Package doctor checks a runai-ldap-sync setup, read-only: the directory
// bind and bases, the groups of the current projects, Run:AI's ClusterRoles,
// the daemon's RBAC and admission policy, what the bindings really grant,
// and whether the user IDs written match the API server's user names.
//
// The checks' verdicts (this file, access.go, userid.go, policy.go) are
// pure; doctor.go does the reads.
package doctor

import (
	"encoding/json"
	"fmt"
	"io"
)

// Status is a check's verdict.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Check is one line of the report.
type Check struct {
	// Name groups the lines of one check, e.g. "ldap.bind".
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	// Fix says what to change; empty when Status is OK.
	Fix string `json:"fix,omitempty"`
}

// Report is every check, in the order they ran.
type Report struct {
	Checks []Check `json:"checks"`
}

func (r *Report) add(c Check) { r.Checks = append(r.Checks, c) }

// Exit statuses of `doctor`.
const (
	ExitOK       = 0 // every check ok
	ExitWarnings = 1 // warnings, no failure
	ExitFailures = 2 // at least one failure (or doctor could not run)
)

// ExitCode is 0 when every check is ok, 1 with warnings only, 2 with any
// failure.
func (r *Report) ExitCode() int {
	code := ExitOK
	for _, c := range r.Checks {
		switch c.Status {
		case Fail:
			return ExitFailures
		case Warn:
			code = ExitWarnings
		}
	}
	return code
}

// Count returns how many checks have each status.
func (r *Report) Count() map[Status]int {
	n := map[Status]int{}
	for _, c := range r.Checks {
		n[c.Status]++
	}
	return n
}

// WriteText prints one line per check, its fix indented below it, and a
// summary.
func (r *Report) WriteText(w io.Writer) error {
	for _, c := range r.Checks {
		if _, err := fmt.Fprintf(w, "%-4s  %-20s %s\n", c.Status, c.Name, c.Message); err != nil {
			return err
		}
		if c.Fix != "" {
			if _, err := fmt.Fprintf(w, "      %-20s fix: %s\n", "", c.Fix); err != nil {
				return err
			}
		}
	}
	n := r.Count()
	_, err := fmt.Fprintf(w, "\n%d ok, %d warnings, %d failures\n", n[OK], n[Warn], n[Fail])
	return err
}

// WriteJSON prints the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		*Report
		Summary map[Status]int `json:"summary"`
	}{r, r.Count()})
}
