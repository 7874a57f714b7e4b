package ldapsrc

import (
	"net"
	"strings"
	"sync"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// fakeLDAP is a minimal in-process LDAP server for failure cases the real
// servers cannot be made to produce on demand: values forced into ranges,
// answers cut short, connections dropped mid-page, refused page sizes. The
// real-server behaviour is covered by the integration tests.
type fakeLDAP struct {
	t      *testing.T
	ln     net.Listener
	handle func(req fakeSearch) fakeAnswer
	// refuseBind answers every bind with invalidCredentials (result 49).
	refuseBind bool

	mu       sync.Mutex
	searches []fakeSearch
}

type fakeSearch struct {
	BaseDN   string
	Scope    int
	Filter   string
	Attrs    []string
	PageSize int
	Cookie   string
}

type fakeAnswer struct {
	Entries []*ldap.Entry
	Code    uint16 // LDAP result code of SearchResultDone
	Cookie  string // non-empty: more pages follow
	Drop    bool   // close the connection after the entries, without a result
}

func newFakeLDAP(t *testing.T, handle func(fakeSearch) fakeAnswer) *fakeLDAP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLDAP{t: t, ln: ln, handle: handle}
	go f.serve()
	t.Cleanup(func() { ln.Close() })
	return f
}

func (f *fakeLDAP) URL() string { return "ldap://" + f.ln.Addr().String() }

func (f *fakeLDAP) Searches() []fakeSearch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeSearch(nil), f.searches...)
}

func (f *fakeLDAP) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go f.conn(c)
	}
}

func (f *fakeLDAP) conn(c net.Conn) {
	defer c.Close()
	for {
		p, err := ber.ReadPacket(c)
		if err != nil {
			return
		}
		id := p.Children[0].Value.(int64)
		op := p.Children[1]
		switch op.Tag {
		case ldap.ApplicationBindRequest:
			code := uint16(0)
			if f.refuseBind {
				code = ldap.LDAPResultInvalidCredentials
			}
			write(c, envelope(id, result(ldap.ApplicationBindResponse, code), nil))
		case ldap.ApplicationUnbindRequest:
			return
		case ldap.ApplicationSearchRequest:
			req := fakeSearch{
				BaseDN: string(op.Children[0].Data.Bytes()),
				Scope:  int(op.Children[1].Value.(int64)),
			}
			filter, err := ldap.DecompileFilter(op.Children[6])
			if err != nil {
				f.t.Errorf("fake LDAP: bad filter: %v", err)
				return
			}
			req.Filter = filter
			for _, a := range op.Children[7].Children {
				req.Attrs = append(req.Attrs, string(a.Data.Bytes()))
			}
			if len(p.Children) > 2 {
				for _, ctrl := range p.Children[2].Children {
					dc, err := ldap.DecodeControl(ctrl)
					if err == nil {
						if pc, ok := dc.(*ldap.ControlPaging); ok {
							req.PageSize, req.Cookie = int(pc.PagingSize), string(pc.Cookie)
						}
					}
				}
			}
			f.mu.Lock()
			f.searches = append(f.searches, req)
			f.mu.Unlock()
			ans := f.handle(req)
			for _, e := range ans.Entries {
				write(c, envelope(id, entry(e), nil))
			}
			if ans.Drop {
				return
			}
			var controls *ber.Packet
			if req.PageSize > 0 {
				pc := ldap.NewControlPaging(0)
				pc.SetCookie([]byte(ans.Cookie))
				controls = ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "Controls")
				controls.AppendChild(pc.Encode())
			}
			write(c, envelope(id, result(ldap.ApplicationSearchResultDone, ans.Code), controls))
		default:
			f.t.Errorf("fake LDAP: unexpected operation %d", op.Tag)
			return
		}
	}
}

func envelope(id int64, op, controls *ber.Packet) *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Response")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
	p.AppendChild(op)
	if controls != nil {
		p.AppendChild(controls)
	}
	return p
}

func result(tag ber.Tag, code uint16) *ber.Packet {
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "Result")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), "resultCode"))
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matchedDN"))
	diag := ""
	if code != 0 {
		diag = "fake: " + ldap.LDAPResultCodeMap[code]
	}
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, "diagnosticMessage"))
	return p
}

func entry(e *ldap.Entry) *ber.Packet {
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultEntry, nil, "Entry")
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, e.DN, "DN"))
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Attributes")
	for _, a := range e.Attributes {
		pa := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Attribute")
		pa.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a.Name, "type"))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "Values")
		for _, v := range a.Values {
			set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, "value"))
		}
		pa.AppendChild(set)
		attrs.AppendChild(pa)
	}
	p.AppendChild(attrs)
	return p
}

func write(c net.Conn, p *ber.Packet) {
	_, _ = c.Write(p.Bytes())
}

// attrsWanted reports whether a request asks for an attribute (by prefix,
// so "member;range=1500-*" matches "member").
func attrsWanted(req fakeSearch, name string) (string, bool) {
	for _, a := range req.Attrs {
		if strings.EqualFold(a, name) || strings.HasPrefix(strings.ToLower(a), strings.ToLower(name)+";") {
			return a, true
		}
	}
	return "", false
}
