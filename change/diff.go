package change

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"

	"github.com/pimhook/pimhook"
)

// Diff compares two JSON documents, an entity's data before (from) and after
// (to), and returns every changed field sorted by Name. It returns no changes
// when the documents hold the same data.
//
// Objects are compared member by member, recursively, and a changed leaf is
// named by its dotted path (see JoinPath). Arrays, scalars and values whose
// type changed are compared as whole values. A member that appears or
// disappears is one change at its own path, with FromMissing or ToMissing
// set, even when it is an object. Numbers compare by exact decimal value,
// strings by decoded text, and key order never matters. From and To are the
// values as they appear in the documents, with whitespace removed; a missing
// side is null.
//
// An empty document, or a top-level null, holds no data: against an object,
// each of the object's members appears or disappears. When either document
// holds a value that is not an object, the result is at most one change named
// "", for the whole document.
//
// Invalid JSON is a KindInvalid *pimhook.Error naming the document.
func Diff(from, to json.RawMessage) ([]pimhook.FieldChange, error) {
	w := getWalker()
	defer putWalker(w)
	if err := w.parse(from, to, "from", "to"); err != nil {
		return nil, err
	}
	w.walk()
	return w.changes(), nil
}

// Equal reports whether two JSON documents hold the same data by the rules of
// Diff: it is true exactly when Diff(a, b) returns no changes. In particular
// an empty document, a top-level null and {} are all equal.
func Equal(a, b json.RawMessage) (bool, error) {
	w := getWalker()
	defer putWalker(w)
	if err := w.parse(a, b, "first document", "second document"); err != nil {
		return false, err
	}
	w.equalOnly = true
	w.walk()
	return len(w.found) == 0, nil
}

// walker compares document a with document b. It is pooled: its buffers
// outlive one call.
type walker struct {
	a, b doc

	path      []byte // the dotted path of the object being compared
	names     []byte // the names of the changes found, end to end
	found     []found
	equalOnly bool // stop at the first change, recording no name

	// Scratch space for decoded strings and normalized numbers.
	strA, strB, numA, numB []byte
}

// found is one change: its name is names[start:end]; from and to are node
// indices, -1 when missing.
type found struct {
	start, end int
	from, to   int
}

var walkers = sync.Pool{New: func() any { return new(walker) }}

func getWalker() *walker { return walkers.Get().(*walker) }

// putWalker returns w to the pool unless one huge document grew its buffers.
func putWalker(w *walker) {
	const maxNodes, maxBytes = 1 << 14, 1 << 20
	if cap(w.a.nodes) > maxNodes || cap(w.b.nodes) > maxNodes {
		return
	}
	for _, b := range [][]byte{w.a.keys, w.b.keys, w.names, w.path, w.strA, w.strB, w.numA, w.numB} {
		if cap(b) > maxBytes {
			return
		}
	}
	w.a.reset()
	w.b.reset()
	w.path, w.names, w.found, w.equalOnly = w.path[:0], w.names[:0], w.found[:0], false
	walkers.Put(w)
}

func (w *walker) parse(a, b []byte, nameA, nameB string) error {
	if err := w.a.parse(a); err != nil {
		return invalid(nameA, err)
	}
	if err := w.b.parse(b); err != nil {
		return invalid(nameB, err)
	}
	return nil
}

func invalid(name string, err error) error {
	return pimhook.Errorf(pimhook.KindInvalid, pimhook.CodeMalformedJSON, "%s is not valid JSON: %v", name, err)
}

func (w *walker) walk() {
	ra, rb := w.a.data(), w.b.data()
	objA := ra < 0 || w.a.nodes[ra].kind == kindObject
	objB := rb < 0 || w.b.nodes[rb].kind == kindObject
	switch {
	case objA && objB:
		w.object(ra, rb, false)
	case ra < 0 || rb < 0 || !w.equal(ra, rb):
		w.record(ra, rb)
	}
}

// object compares the members of two objects, either of which may be -1 for
// no data. nested is false for the document's top level.
func (w *walker) object(x, y int, nested bool) {
	var ka, kb []int
	if x >= 0 {
		ka = w.a.children(x)
	}
	if y >= 0 {
		kb = w.b.children(y)
	}
	mark := len(w.path)
	for i, j := 0, 0; i < len(ka) || j < len(kb); {
		if w.equalOnly && len(w.found) > 0 {
			return
		}
		var c int
		switch {
		case i == len(ka):
			c = 1
		case j == len(kb):
			c = -1
		default:
			c = bytes.Compare(w.a.nodes[ka[i]].key, w.b.nodes[kb[j]].key)
		}
		switch {
		case c < 0:
			w.path = appendSegment(w.path, w.a.nodes[ka[i]].key, nested)
			w.record(ka[i], -1)
			i++
		case c > 0:
			w.path = appendSegment(w.path, w.b.nodes[kb[j]].key, nested)
			w.record(-1, kb[j])
			j++
		default:
			u, v := ka[i], kb[j]
			i++
			j++
			if bytes.Equal(w.a.raw(u), w.b.raw(v)) {
				continue
			}
			w.path = appendSegment(w.path, w.a.nodes[u].key, nested)
			if w.a.nodes[u].kind == kindObject && w.b.nodes[v].kind == kindObject {
				w.object(u, v, true)
			} else if !w.equal(u, v) {
				w.record(u, v)
			}
		}
		w.path = w.path[:mark]
	}
}

// record notes a change at the current path.
func (w *walker) record(from, to int) {
	if w.equalOnly {
		w.found = append(w.found, found{from: from, to: to})
		return
	}
	start := len(w.names)
	w.names = append(w.names, w.path...)
	w.found = append(w.found, found{start: start, end: len(w.names), from: from, to: to})
}

// equal reports whether node x of a and node y of b are the same value.
func (w *walker) equal(x, y int) bool {
	na, nb := &w.a.nodes[x], &w.b.nodes[y]
	if na.kind != nb.kind {
		return false
	}
	ra, rb := w.a.raw(x), w.b.raw(y)
	if bytes.Equal(ra, rb) {
		return true
	}
	switch na.kind {
	case kindNumber:
		if !na.flag && !nb.flag {
			// Integers without fraction or exponent have one spelling,
			// but for the sign of zero.
			return isZero(ra) && isZero(rb)
		}
		w.numA = appendNumber(w.numA[:0], ra)
		w.numB = appendNumber(w.numB[:0], rb)
		return bytes.Equal(w.numA, w.numB)
	case kindString:
		if !na.flag && !nb.flag {
			return false
		}
		w.strA = appendUnquoted(w.strA[:0], ra[1:len(ra)-1])
		w.strB = appendUnquoted(w.strB[:0], rb[1:len(rb)-1])
		return bytes.Equal(w.strA, w.strB)
	case kindArray:
		ka, kb := w.a.children(x), w.b.children(y)
		if len(ka) != len(kb) {
			return false
		}
		for i := range ka {
			if !w.equal(ka[i], kb[i]) {
				return false
			}
		}
		return true
	case kindObject:
		ka, kb := w.a.children(x), w.b.children(y)
		if len(ka) != len(kb) {
			return false
		}
		for i := range ka {
			if !bytes.Equal(w.a.nodes[ka[i]].key, w.b.nodes[kb[i]].key) || !w.equal(ka[i], kb[i]) {
				return false
			}
		}
		return true
	}
	return false // null and booleans are equal only when spelt the same
}

func isZero(num []byte) bool {
	return len(num) == 1 && num[0] == '0' || len(num) == 2 && num[0] == '-' && num[1] == '0'
}

// changes turns what the walk found into FieldChanges sorted by name. All
// names share one string and all values one buffer.
func (w *walker) changes() []pimhook.FieldChange {
	if len(w.found) == 0 {
		return nil
	}
	names := w.names
	slices.SortFunc(w.found, func(p, q found) int {
		return bytes.Compare(names[p.start:p.end], names[q.start:q.end])
	})
	size := 0
	for _, f := range w.found {
		size += w.size(&w.a, f.from) + w.size(&w.b, f.to)
	}
	all := string(names)
	buf := make([]byte, 0, size)
	out := make([]pimhook.FieldChange, len(w.found))
	for i, f := range w.found {
		c := &out[i]
		c.Name = all[f.start:f.end]
		start := len(buf)
		buf = value(buf, &w.a, f.from)
		c.From = buf[start:len(buf):len(buf)]
		start = len(buf)
		buf = value(buf, &w.b, f.to)
		c.To = buf[start:len(buf):len(buf)]
		c.FromMissing, c.ToMissing = f.from < 0, f.to < 0
	}
	return out
}

// size is at least the length of value(nil, d, i).
func (w *walker) size(d *doc, i int) int {
	if i < 0 {
		return len("null")
	}
	return d.nodes[i].end - d.nodes[i].start
}

// value appends node i of d, compacted, or null when i is -1.
func value(dst []byte, d *doc, i int) []byte {
	if i < 0 {
		return append(dst, "null"...)
	}
	if k := d.nodes[i].kind; k == kindArray || k == kindObject {
		return appendCompact(dst, d.raw(i))
	}
	return append(dst, d.raw(i)...)
}
