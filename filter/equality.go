package filter

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// equalityTree returns a copy of d's tree for queries that compare objects
// or arrays (`@.a == @.b`). The JSONPath library compares two of them by
// tag, then member by member in order and scalars by their text, so {"a":1,
// "b":2} differs from {"b":2,"a":1} and [1] from [1.0]; RFC 9535 says both
// pairs are equal. In the copy every object and array has a tag of its own,
// "!!map#" or "!!seq#" and a fingerprint of its value (member order and
// number spelling left out), which the library compares whole and, not
// knowing the tag, takes as the answer. Scalars are shared with d's tree.
func (d *Document) equalityTree() *yaml.Node {
	d.eqOnce.Do(func() {
		d.eqRoot, _ = fingerprintCopy(d.root)
	})
	return d.eqRoot
}

// fingerprintCopy copies the objects and arrays of n's tree, tagging each
// with its fingerprint, and returns the copy and n's fingerprint.
func fingerprintCopy(n *yaml.Node) (*yaml.Node, uint64) {
	var m maphash.Hash
	m.SetSeed(fingerprintSeed)
	switch n.Kind {
	case yaml.MappingNode:
		c := &yaml.Node{Kind: n.Kind, Content: make([]*yaml.Node, len(n.Content))}
		type member struct {
			name string
			sum  uint64
		}
		members := make([]member, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, sum := fingerprintCopy(n.Content[i+1])
			c.Content[i], c.Content[i+1] = n.Content[i], v
			members = append(members, member{n.Content[i].Value, sum})
		}
		slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.name, b.name) })
		m.WriteByte('{')
		for _, mb := range members {
			m.WriteString(strconv.Itoa(len(mb.name)))
			m.WriteByte(':')
			m.WriteString(mb.name)
			writeSum(&m, mb.sum)
		}
		sum := m.Sum64()
		c.Tag = tagMap + "#" + strconv.FormatUint(sum, 16)
		return c, sum
	case yaml.SequenceNode:
		c := &yaml.Node{Kind: n.Kind, Content: make([]*yaml.Node, len(n.Content))}
		m.WriteByte('[')
		for i, e := range n.Content {
			v, sum := fingerprintCopy(e)
			c.Content[i] = v
			writeSum(&m, sum)
		}
		sum := m.Sum64()
		c.Tag = tagSeq + "#" + strconv.FormatUint(sum, 16)
		return c, sum
	}
	switch n.Tag {
	case tagInt, tagFloat:
		m.WriteByte('n')
		m.WriteString(canonicalNumber(n))
	default:
		m.WriteString(n.Tag)
		m.WriteByte(0)
		m.WriteString(n.Value)
	}
	return n, m.Sum64()
}

func writeSum(m *maphash.Hash, sum uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], sum)
	m.Write(b[:])
}

var fingerprintSeed = maphash.MakeSeed()

// canonicalNumber spells a number so that equal values are spelled alike:
// 1, 1.0 and 1e0 all give "i1".
func canonicalNumber(n *yaml.Node) string {
	if i, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
		return "i" + strconv.FormatInt(i, 10)
	}
	f, _ := strconv.ParseFloat(n.Value, 64)
	if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		return "i" + strconv.FormatInt(int64(f), 10)
	}
	return "f" + strconv.FormatFloat(f, 'g', -1, 64)
}
