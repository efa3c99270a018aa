package migration_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pimhook/pimhook/internal/migration"
)

func TestRead(t *testing.T) {
	t.Parallel()
	ms, err := migration.Read(fstest.MapFS{
		"migration/010_later.up.sql": {Data: []byte("B")},
		"migration/002_first.up.sql": {Data: []byte("A")},
		"migration/notes.txt":        {Data: []byte("ignored")},
	})
	if err != nil || len(ms) != 2 || ms[0].Version != 2 || ms[0].Name != "first" || ms[0].SQL != "A" || ms[1].Version != 10 {
		t.Fatalf("Read = %+v, %v; want 002_first then 010_later", ms, err)
	}
	for name, files := range map[string]fstest.MapFS{
		"no name":     {"migration/003.up.sql": {}},
		"bad version": {"migration/x_a.up.sql": {}},
		"zero":        {"migration/000_a.up.sql": {}},
		"twice":       {"migration/1_a.up.sql": {}, "migration/001_b.up.sql": {}},
	} {
		if _, err := migration.Read(files); err == nil || !strings.Contains(err.Error(), "migration") {
			t.Errorf("%s: %v, want an error", name, err)
		}
	}
}
