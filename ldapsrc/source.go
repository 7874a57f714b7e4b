// Package ldapsrc reads the directory: it finds the groups named per
// project and resolves their members, nested groups included, to user IDs.
// It is the "source" of desired state; it never writes to the directory.
package ldapsrc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// MaxUserIDLength bounds a user ID; longer values are rejected, as a DNS
// subdomain name is the longest name Kubernetes tools handle comfortably.
const MaxUserIDLength = 253

// Result is one resolution of a set of group names.
type Result struct {
	Groups map[string]*model.Group
	// Skipped counts unique member entries skipped, by reason.
	Skipped map[string]int
	// SkippedSamples keeps a few DNs per reason for the log line.
	SkippedSamples map[string][]string
}

// Stats counts directory work, for metrics and the benchmark.
type Stats struct {
	Searches atomic.Int64
	Entries  atomic.Int64
	Binds    atomic.Int64
}

// Counts returns the counters' values (metrics reads them without
// importing ldapsrc).
func (s *Stats) Counts() (searches, entries, binds int64) {
	return s.Searches.Load(), s.Entries.Load(), s.Binds.Load()
}

// Source resolves groups against one directory. Its parts: connector
// holds the connection, bind and password (conn.go); changeFeed follows
// the directory's changes for polls (changes.go); Source itself resolves
// groups, discovers projects and answers doctor's questions.
type Source struct {
	*connector
	*changeFeed
	// Trace records how every member is reached (Group.Memberships), for
	// `explain`; the daemon leaves it off.
	Trace bool
	// Reach records Group.Reached, for incremental change detection.
	Reach bool
	// maxPages overrides the page cap of one paged search (tests).
	maxPages int
	// now is the clock accountExpires is compared with (tests set it).
	now func() time.Time
}

// New returns a Source for cfg.
func New(cfg config.LDAP, log *zap.Logger) *Source {
	c := &connector{cfg: cfg, log: log}
	s := &Source{connector: c, now: time.Now}
	s.changeFeed = &changeFeed{connector: c, src: s, digestOn: userDigestAttrs(cfg)}
	setMaxPacket(cfg.MaxPacketBytes)
	_, _ = rand.Read(c.fpKey[:])
	c.readPassword = func() (string, error) {
		b, err := os.ReadFile(cfg.BindPasswordFile)
		if err != nil {
			// The path is not secret; the content never appears.
			return "", fmt.Errorf("read bind password file %s: %w (check ldap.bindPasswordFile and the mounted Secret)", cfg.BindPasswordFile, errors.Unwrap(err))
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("bind password file %s is empty; an empty password would be an anonymous bind", cfg.BindPasswordFile)
		}
		return pw, nil
	}
	return s
}

// Resolve finds every named group and resolves its members. A failure to
// connect or bind is returned as an error (nothing could be read); a
// failure for one group is recorded in that group's Err and the others
// are still resolved.
func (s *Source) Resolve(ctx context.Context, names []string) (*Result, error) {
	return s.resolveWith(ctx, names, false)
}

// ResolveTargeted resolves like Resolve, but reads only the entries the
// named groups lead to (the groups by name, then their members by DN or ID,
// level by level) instead of every group and user: for a handful of groups
// (an incremental sync) that is a few small searches rather than a read of
// the whole directory. With activeDirectory inChain it is Resolve.
func (s *Source) ResolveTargeted(ctx context.Context, names []string) (*Result, error) {
	return s.resolveWith(ctx, names, true)
}

func (s *Source) resolveWith(ctx context.Context, names []string, targeted bool) (*Result, error) {
	ctx, cancel := s.cycleContext(ctx, "resolving group members")
	defer cancel()
	conn, done, err := s.session(ctx)
	if err != nil {
		return nil, s.overran(ctx, err)
	}
	defer done()
	r := newResolver(s, conn)
	r.targeted = targeted
	res, err := r.resolve(ctx, model.SortedUnique(names))
	if err != nil || conn.IsClosing() {
		s.dropSession(conn)
	}
	if err != nil {
		return nil, s.overran(ctx, err)
	}
	if cause := overrun(ctx); cause != nil {
		// Groups resolved before the deadline are complete, but a cycle
		// that overran is failed as a whole: its result is not what the
		// directory holds at one time, and the next cycle tries again.
		return nil, cause
	}
	return res, nil
}

// errCycleTimeout marks a directory read stopped by ldap.cycleTimeout.
type errCycleTimeout struct {
	what    string
	timeout time.Duration
}

func (e *errCycleTimeout) Error() string {
	return fmt.Sprintf("%s took longer than ldap.cycleTimeout (%v); nothing read is used: check the directory's response times, or raise ldap.cycleTimeout", e.what, e.timeout)
}

// cycleContext bounds one whole directory read by ldap.cycleTimeout.
func (s *Source) cycleContext(ctx context.Context, what string) (context.Context, context.CancelFunc) {
	if s.cfg.CycleTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, s.cfg.CycleTimeout, &errCycleTimeout{what: what, timeout: s.cfg.CycleTimeout})
}

// overrun returns the cycle-timeout error if ctx ended by it.
func overrun(ctx context.Context) error {
	var e *errCycleTimeout
	if ctx.Err() != nil && errors.As(context.Cause(ctx), &e) {
		return e
	}
	return nil
}

// overran puts the cycle-timeout error in front of err when that is why
// err happened.
func (s *Source) overran(ctx context.Context, err error) error {
	if cause := overrun(ctx); cause != nil {
		return fmt.Errorf("%w: %w", cause, err)
	}
	return err
}

// Ping connects and binds, to check configuration and credentials.
func (s *connector) Ping(ctx context.Context) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	conn.Close()
	return nil
}

// NormalizeID turns a directory value into a Kubernetes user name, or
// returns why it cannot be one. Only printable ASCII is accepted: a
// non-ASCII ID could look like, or case-fold into, another one (the Kelvin
// sign K and k; zero-width, bidi and other invisible characters that make
// "alice\u200b" read as alice in a diff, an Event or a binding), and OIDC
// user names for Kubernetes are ASCII in practice.
func NormalizeID(raw, idCase, prefix string) (string, error) {
	id := strings.TrimSpace(raw)
	if id == "" {
		return "", errors.New("user ID is empty")
	}
	for _, r := range id {
		switch {
		case unicode.IsControl(r):
			return "", fmt.Errorf("user ID %+q contains a control character", id)
		case r > unicode.MaxASCII:
			return "", fmt.Errorf("user ID %+q contains the non-ASCII character %U; only ASCII user IDs are bound", id, r)
		}
	}
	if idCase == config.CaseLower {
		id = FoldASCII(id)
	}
	id = prefix + id
	if strings.HasPrefix(FoldASCII(id), "system:") {
		return "", fmt.Errorf("user ID %q starts with system:, which Kubernetes reserves for its own identities", id)
	}
	if len(id) > MaxUserIDLength {
		return "", fmt.Errorf("user ID of %d bytes is longer than %d", len(id), MaxUserIDLength)
	}
	return id, nil
}
