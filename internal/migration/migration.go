// Package migration reads the numbered schema migrations a store embeds:
// files migration/NNN_name.up.sql, applied in order of NNN. Each store
// applies them its own way; the naming and ordering rules are here, once.
package migration

import (
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

// Migration is one schema migration.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Read returns the migrations in fsys's migration directory, in version
// order. A file not named NNN_name.up.sql, or a version given twice, is an
// error.
func Read(fsys fs.FS) ([]Migration, error) {
	files, err := fs.Glob(fsys, "migration/*.up.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, f := range files {
		base := strings.TrimSuffix(strings.TrimPrefix(f, "migration/"), ".up.sql")
		num, name, ok := strings.Cut(base, "_")
		if !ok {
			return nil, fmt.Errorf("migration %s: name is not NNN_name.up.sql", f)
		}
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: %q is not a positive version", f, num)
		}
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("migration version %d appears twice", ms[i].Version)
		}
	}
	return ms, nil
}
