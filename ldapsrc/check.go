package ldapsrc

import (
	"fmt"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

// CheckConfig checks what only an LDAP parser can tell about a
// configuration config.Validate has passed: that its DNs are DNs and its
// filter is a filter. It returns a config.ValidationError naming every
// field at fault, or nil; start-up runs it right after loading.
func CheckConfig(cfg *config.Config) error {
	var errs config.ValidationError
	add := func(field, format string, args ...any) {
		errs = append(errs, config.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	l := cfg.LDAP
	dns := []struct{ field, value string }{
		{"ldap.baseDN", l.BaseDN}, {"ldap.groupBaseDN", l.GroupBaseDN}, {"ldap.userBaseDN", l.UserBaseDN},
	}
	if fg := cfg.Projects.FromGroups; fg != nil {
		dns = append(dns, struct{ field, value string }{"projects.fromGroups.baseDN", fg.BaseDN})
	}
	for _, dn := range dns {
		if dn.value != "" {
			if _, err := ldap.ParseDN(dn.value); err != nil {
				add(dn.field, "%q is not a valid DN: %v", dn.value, err)
			}
		}
	}
	if l.UserFilter != "" {
		if _, err := ldap.CompileFilter(l.UserFilter); err != nil {
			add("ldap.userFilter", "%q is not an LDAP filter: %v", l.UserFilter, err)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
