package ldapsrc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
)

// pagedSearch runs req with the paged-results control (RFC 2696) and calls
// fn for every entry, page by page, so memory holds one page at a time.
// Referrals (continuation references from a search at the domain root) are
// ignored. Any error — including a size or time limit, or a connection
// dropped mid-page — is returned: a partial answer is never a short one.
func (r *dirReader) pagedSearch(ctx context.Context, req *ldap.SearchRequest, fn func(*ldap.Entry) error) error {
	size := r.pageSize
	if size == 0 {
		size = r.src.cfg.PageSize
	}
	paging := ldap.NewControlPaging(uint32(size))
	req.Controls = append(req.Controls, paging)
	first := true
	limit := r.src.maxPages
	if limit == 0 {
		limit = maxPages
	}
	for page := 0; ; page++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if page >= limit {
			// A server that keeps handing out cookies (broken, or hostile)
			// would otherwise hold the cycle and its memory forever.
			return fmt.Errorf("search under %s still returned more pages after %d pages of up to %d entries; a partial answer is never used (check the server, or narrow ldap.baseDN)", req.BaseDN, page, size)
		}
		r.src.Stats.Searches.Add(1)
		res, err := r.conn.Search(req)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return fmt.Errorf("%w (search interrupted: %v)", ctxErr, err)
			}
			// Some servers refuse a page larger than their maximum (OpenLDAP
			// with size.pr) rather than capping it as AD does: retry the
			// search with smaller pages, and keep that size for the cycle.
			if first && (res == nil || len(res.Entries) == 0) && size > minPageSize && ldap.IsErrorAnyOf(err, ldap.LDAPResultAdminLimitExceeded, ldap.LDAPResultUnwillingToPerform) {
				size = max(size/2, minPageSize)
				r.pageSize = size
				r.src.log.Info("server refused the page size; using smaller pages", zap.Int("pageSize", size), zap.Error(err))
				paging.PagingSize = uint32(size)
				paging.SetCookie(nil)
				continue
			}
			return describeSearchError(err)
		}
		first = false
		r.src.Stats.Entries.Add(int64(len(res.Entries)))
		for _, e := range res.Entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		ctrl := ldap.FindControl(res.Controls, ldap.ControlTypePaging)
		if ctrl == nil {
			return nil // server does not page: it returned everything at once
		}
		pc, ok := ctrl.(*ldap.ControlPaging)
		if !ok || len(pc.Cookie) == 0 {
			return nil
		}
		paging.SetCookie(pc.Cookie)
	}
}

// maxPages bounds the pages of one paged search: 100,000 pages of the
// smallest page size are five million entries, far more than any directory
// this tool serves, yet finite.
const maxPages = 100_000

// minPageSize is the smallest page the fallback goes down to.
const minPageSize = 50

func describeSearchError(err error) error {
	if strings.Contains(err.Error(), "greater than maximum") {
		// go-asn1-ber refused a message over the cap (conn.go), and the
		// connection is closed: nothing of this read is used.
		return fmt.Errorf("the server sent an LDAP message larger than ldap.maxPacketBytes (%d bytes); nothing of this read is used: raise ldap.maxPacketBytes if one entry really is that large, or check the server: %w", ber.MaxPacketLengthBytes, err)
	}
	var le *ldap.Error
	if errors.As(err, &le) {
		switch le.ResultCode {
		case ldap.LDAPResultSizeLimitExceeded:
			return fmt.Errorf("search cut short by the server's size limit; a partial answer is never used: raise the limit for the bind account (AD: MaxPageSize is per page and fine; OpenLDAP: olcLimits size.prtotal=unlimited): %w", err)
		case ldap.LDAPResultTimeLimitExceeded:
			return fmt.Errorf("search cut short by the server's time limit: %w", err)
		case ldap.LDAPResultNoSuchObject:
			return fmt.Errorf("search base does not exist (check ldap.baseDN): %w", err)
		case ldap.ErrorNetwork:
			return fmt.Errorf("connection lost during search: %w", err)
		}
	}
	return fmt.Errorf("search: %w", err)
}
