package ldapsrc

import (
	"encoding/binary"
	"testing"
)

// rawSID encodes S-1-5-<subs...> as AD stores objectSid.
func rawSID(subs ...uint32) []byte {
	b := []byte{1, byte(len(subs)), 0, 0, 0, 0, 0, 5}
	for _, s := range subs {
		b = binary.LittleEndian.AppendUint32(b, s)
	}
	return b
}

func TestDecodeSID(t *testing.T) {
	if got := decodeSID(rawSID(21, 1004336348, 1177238915, 682003330, 1105)); got != "S-1-5-21-1004336348-1177238915-682003330-1105" {
		t.Errorf("decodeSID = %q", got)
	}
	for _, bad := range [][]byte{nil, {1}, rawSID(21, 1)[:10]} {
		if got := decodeSID(bad); got != "" {
			t.Errorf("decodeSID(%v) = %q, want empty", bad, got)
		}
	}
}

func TestPrimaryGroupSID(t *testing.T) {
	user := rawSID(21, 1, 2, 3, 1200)
	if got := primaryGroupSID(user, "513"); got != "S-1-5-21-1-2-3-513" {
		t.Errorf("primaryGroupSID = %q (the user's domain and the RID)", got)
	}
	for _, rid := range []string{"", "x", "-1"} {
		if got := primaryGroupSID(user, rid); got != "" {
			t.Errorf("primaryGroupSID(%q) = %q, want empty", rid, got)
		}
	}
	if got := primaryGroupSID(nil, "513"); got != "" {
		t.Errorf("no user SID: %q", got)
	}
	if got := sidRID("S-1-5-21-1-2-3-513"); got != "513" {
		t.Errorf("sidRID = %q", got)
	}
}
