package filter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dop251/goja"
	"github.com/pimhook/pimhook"
	"gopkg.in/yaml.v3"
)

// Filter is a compiled filter. It is immutable and safe for concurrent
// use.
type Filter struct {
	e    *Engine
	root *node
}

// node is one node of a filter: its own check (query, condition or both)
// and its nested conditions, combined by logic.
type node struct {
	where    string // path in the filter: "conditions[1]"; empty for the root
	query    *query
	cond     *condition
	or       bool
	children []*node
}

// compileFilter normalizes a copy of f (the caller's is not changed) and
// compiles it. field prefixes the paths in errors.
func compileFilter(e *Engine, f *pimhook.Filter, field string) (*Filter, error) {
	c := copyFilter(f, 0)
	if err := c.Normalize(field); err != nil {
		return nil, err
	}
	root, err := compileNode(c, field, "")
	if err != nil {
		return nil, err
	}
	return &Filter{e: e, root: root}, nil
}

// copyFilter copies f deeply enough for Normalize, which trims and
// uppercases in place. Past the depth limit it stops: Normalize refuses
// the copy there.
func copyFilter(f *pimhook.Filter, depth int) *pimhook.Filter {
	if f == nil {
		return nil
	}
	c := *f
	if depth > pimhook.MaxFilterDepth {
		c.Conditions = nil
		return &c
	}
	if f.Conditions != nil {
		c.Conditions = make([]*pimhook.Filter, len(f.Conditions))
		for i, sub := range f.Conditions {
			c.Conditions[i] = copyFilter(sub, depth+1)
		}
	}
	return &c
}

func compileNode(f *pimhook.Filter, field, where string) (*node, error) {
	n := &node{where: where, or: f.Logic == pimhook.LogicOr}
	if f.Query != "" {
		q, err := compileQuery(f.Query)
		if err != nil {
			return nil, pimhook.FieldError(pimhook.CodeInvalidFilter, field+".query", "%v", err)
		}
		n.query = q
	}
	if f.Condition != "" {
		c, err := compileCondition(f.Condition)
		if err != nil {
			return nil, pimhook.FieldError(pimhook.CodeInvalidFilter, field+".condition", "%v", err)
		}
		n.cond = c
	}
	for i, sub := range f.Conditions {
		name := "conditions[" + strconv.Itoa(i) + "]"
		w := name
		if where != "" {
			w = where + "." + name
		}
		c, err := compileNode(sub, field+"."+name, w)
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, c)
	}
	return n, nil
}

// Match evaluates f on doc. An error means f could not be evaluated: a
// condition threw, or the evaluation ran past its budget (the error then
// wraps ErrTimeout or ErrMemory).
func (f *Filter) Match(doc *Document) (ok bool, err error) {
	ev := f.e.begin()
	defer ev.end()
	defer func() {
		if p := recover(); p != nil {
			ev.broken = true
			ok, err = false, fmt.Errorf("filter failed: internal error: %v", p)
		}
	}()
	return ev.match(f.root, doc)
}

func (ev *evaluation) match(n *node, doc *Document) (bool, error) {
	own := n.query != nil || n.cond != nil
	if own {
		ok, err := ev.check(n, doc)
		if err != nil {
			return false, err
		}
		if ok == n.or || len(n.children) == 0 {
			return ok, nil
		}
	}
	for _, c := range n.children {
		ok, err := ev.match(c, doc)
		if err != nil {
			return false, err
		}
		if ok == n.or {
			return ok, nil
		}
	}
	return !n.or, nil
}

// check evaluates the own check of n.
func (ev *evaluation) check(n *node, doc *Document) (bool, error) {
	q := n.query
	if n.cond == nil {
		if q.singular {
			return q.one(doc.root) != nil, nil
		}
		nodes, err := ev.all(q, doc, n.where)
		return len(nodes) > 0, err
	}
	if q == nil {
		return ev.call(n, doc.root)
	}
	if q.singular {
		return ev.call(n, q.one(doc.root))
	}
	nodes, err := ev.all(q, doc, n.where)
	if err != nil {
		return false, err
	}
	return ev.call(n, &yaml.Node{Kind: yaml.SequenceNode, Content: nodes})
}

// all evaluates a query that is not singular. A query whose cost may grow
// faster than the document (see query.bounded) runs on a goroutine of its
// own, which the evaluation abandons at its deadline.
func (ev *evaluation) all(q *query, doc *Document, where string) ([]*yaml.Node, error) {
	if q.bounded {
		nodes := q.all(doc)
		return nodes, ev.stopped(where, "query")
	}
	type result struct {
		nodes []*yaml.Node
		panic any
	}
	res := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				res <- result{panic: p}
			}
		}()
		res <- result{nodes: q.all(doc)}
	}()
	t := time.NewTimer(time.Until(ev.deadline))
	defer t.Stop()
	select {
	case r := <-res:
		if r.panic != nil {
			return nil, fmt.Errorf("%s: internal error: %v", prefixed(where, "query failed"), r.panic)
		}
		return r.nodes, ev.stopped(where, "query")
	case <-t.C:
		return nil, &budgetError{where: where, part: "query", reason: reasonTimeout, e: ev.e}
	}
}

// call calls n's condition with arg: the value of a node, or undefined
// when arg is nil.
func (ev *evaluation) call(n *node, arg *yaml.Node) (bool, error) {
	if err := ev.stopped(n.where, "condition"); err != nil {
		return false, err
	}
	rt, err := ev.runtime()
	if err != nil {
		return false, err
	}
	fn, err := rt.function(n.cond)
	if err != nil {
		return false, ev.jsError(n, err)
	}
	v := goja.Undefined()
	if arg != nil {
		v, err = toJS(rt.vm, arg, &ev.values)
		if errors.Is(err, errTooLarge) {
			return false, &budgetError{where: n.where, part: "query", e: ev.e, reason: reasonMemory,
				detail: fmt.Sprintf("selected more than %d values to pass to conditions", ev.e.maxValues())}
		}
		if err != nil {
			return false, ev.jsError(n, err)
		}
	}
	if ev.e.onCall != nil {
		v = ev.e.onCall(n.cond.src, rt.vm, v)
	}
	rt.args[0] = v
	res, err := fn(goja.Undefined(), rt.args[:]...)
	rt.args[0] = nil
	if err != nil {
		return false, ev.jsError(n, err)
	}
	return res.ToBoolean(), nil
}

// jsError describes an error of goja running n's condition.
func (ev *evaluation) jsError(n *node, err error) error {
	var interrupted *goja.InterruptedError
	if errors.As(err, &interrupted) {
		if e := ev.stopped(n.where, "condition"); e != nil {
			return e
		}
		return &budgetError{where: n.where, part: "condition", reason: reasonTimeout, e: ev.e}
	}
	var overflow *goja.StackOverflowError
	if errors.As(err, &overflow) {
		return errors.New(prefixed(n.where, fmt.Sprintf("condition exceeded the call stack limit of %d", ev.e.cfg.MaxStack)))
	}
	var ex *goja.Exception
	if errors.As(err, &ex) {
		msg, ok := exceptionMessage(n.cond.src, ex)
		if !ok {
			ev.broken = true
		}
		if e := ev.stopped(n.where, "condition"); e != nil {
			return e // stopped while describing the exception
		}
		return errors.New(prefixed(n.where, "condition threw "+msg))
	}
	return errors.New(prefixed(n.where, "condition failed: "+strings.TrimSpace(err.Error())))
}
