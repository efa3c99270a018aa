// Package change works out what changed in an entity's data.
//
// Diff compares two JSON documents, the entity's data before and after, and
// lists each changed field by dotted path with its old and new values. Equal
// and Canonical apply the same notion of sameness: numbers compare by exact
// decimal value, strings by their decoded text, objects regardless of key
// order. The rules, with examples, are in docs/diff.md.
package change
