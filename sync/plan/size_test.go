package plan

import (
	"fmt"
	"testing"
)

func TestTooLarge(t *testing.T) {
	var users []string
	for i := 0; i < 20000; i++ {
		users = append(users, fmt.Sprintf("user%06d", i))
	}
	if err := tooLarge(users); err != nil {
		t.Errorf("20,000 users must fit: %v", err)
	}
	for i := 20000; i < 40000; i++ {
		users = append(users, fmt.Sprintf("user%06d", i))
	}
	if err := tooLarge(users); err == nil {
		t.Error("40,000 users (about 2 MiB) must be refused before the API server refuses them")
	}
}
