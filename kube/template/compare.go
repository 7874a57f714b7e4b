package template

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Differs reports whether live lacks something desired holds, and the
// first field path that differs. Only what the template sets is compared
// (in metadata: labels and annotations): fields the API server defaults or
// others add are not drift, so a server-side apply is sent only for an
// object that is missing or was changed by hand in a field we set. Lists
// compare element by element and must have the same length, as the lists
// of the supported kinds (subjects, rules) are atomic: an entry added by
// hand is drift that apply takes back out.
func Differs(desired, live *unstructured.Unstructured) (bool, string) {
	if live == nil {
		return true, "missing"
	}
	for _, k := range model.SortedKeys(desired.Object) {
		switch k {
		case "apiVersion", "kind", "status":
			continue
		case "metadata":
			dm, _ := desired.Object[k].(map[string]any)
			lm, _ := live.Object[k].(map[string]any)
			for _, mk := range []string{"labels", "annotations"} {
				if _, set := dm[mk]; !set {
					continue
				}
				if path, ok := subset(dm[mk], lm[mk], "metadata."+mk); !ok {
					return true, path
				}
			}
		default:
			if path, ok := subset(desired.Object[k], live.Object[k], k); !ok {
				return true, path
			}
		}
	}
	return false, ""
}

// subset reports whether live holds every value of want, and where not.
func subset(want, live any, path string) (string, bool) {
	if isZero(want) {
		// An empty value asked for is what the server omits.
		return path, isZero(live)
	}
	switch w := want.(type) {
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return path, false
		}
		for _, k := range model.SortedKeys(w) {
			if p, ok := subset(w[k], l[k], path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		l, ok := live.([]any)
		if !ok || len(l) != len(w) {
			return path, false
		}
		for i := range w {
			if p, ok := subset(w[i], l[i], fmt.Sprintf("%s[%d]", path, i)); !ok {
				return p, false
			}
		}
		return "", true
	default:
		return path, scalarEqual(want, live)
	}
}

// isZero is true for what the API server leaves out when empty.
func isZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

func scalarEqual(a, b any) bool {
	if fa, ok := number(a); ok {
		fb, ok := number(b)
		return ok && fa == fb
	}
	return a == b
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}
