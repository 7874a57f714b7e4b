package ldapsrc

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

func TestDescribeBindError(t *testing.T) {
	ad := func(data string) error {
		return &ldap.Error{ResultCode: ldap.LDAPResultInvalidCredentials,
			Err: errors.New("80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data " + data + ", v4563")}
	}
	tests := []struct {
		err  error
		want string
	}{
		{ad("52e"), "wrong bind DN or password"},
		{ad("775"), "locked out"},
		{ad("533"), "disabled"},
		{ad("532"), "expired"},
		{ad("773"), "must be reset"},
		{ad("701"), "account has expired"},
		{ad("525"), "no such user"},
		{&ldap.Error{ResultCode: ldap.LDAPResultStrongAuthRequired, Err: errors.New("strong auth")}, "requires TLS"},
		{&ldap.Error{ResultCode: ldap.ErrorNetwork, Err: errors.New("EOF")}, "connection lost"},
		{errors.New("dial tcp: connection refused"), "reachable"},
	}
	for _, tc := range tests {
		got := describeBindError("svc@EXAMPLE.TEST", tc.err).Error()
		if !strings.Contains(got, tc.want) || !strings.Contains(got, "svc@EXAMPLE.TEST") {
			t.Errorf("describeBindError(%v) = %q, want it to say %q", tc.err, got, tc.want)
		}
	}
}
