package health

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReadyzSemantics(t *testing.T) {
	st := &Status{LeaderElection: true, Identity: "me_5678"}
	h := NewHandler(nil, st)
	get := func() (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return w.Code, w.Body.String()
	}
	if code, _ := get(); code != 503 {
		t.Errorf("no leader known yet: %d, want 503", code)
	}
	st.SetLeader("me_5678")
	if code, _ := get(); code != 503 {
		t.Errorf("just acquired, not leading yet: %d, want 503", code)
	}
	st.SetLeader("other_1234")
	if code, body := get(); code != 200 || !strings.Contains(body, "standby") {
		t.Errorf("standby: %d %q", code, body)
	}
	st.SetLeading(true)
	if code, _ := get(); code != 503 {
		t.Errorf("leader before a cycle: %d", code)
	}
	st.SetReady(true)
	if code, _ := get(); code != 200 {
		t.Errorf("leader after a cycle: %d", code)
	}
	noLE := NewHandler(nil, &Status{})
	w := httptest.NewRecorder()
	noLE.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if w.Code != 503 {
		t.Errorf("without leader election, before a cycle: %d", w.Code)
	}
}
