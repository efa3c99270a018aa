package filter

import (
	_ "embed"
	"fmt"
	"sync"
	"time"

	"github.com/dlclark/regexp2/v2"
	"github.com/dop251/goja"
)

// Sandbox limits on single built-in calls (docs/filters.md, "Sandbox").
// Each bounds what one native step may allocate, since the watchdog can
// only interrupt JavaScript between steps.
const (
	maxString   = 1 << 23  // characters (UTF-16 units) of a string a built-in builds: 16 MiB at most
	maxElements = 1 << 20  // elements an array method works on: 16 MiB of slots
	maxBytes    = 16 << 20 // bytes of an ArrayBuffer or typed array
	maxArgs     = 1 << 16  // arguments spread from an array-like by apply
	maxDepth    = 1000     // nesting of JSON.parse text, JSON.stringify values, flat
	maxPattern  = 1 << 16  // characters of a RegExp made from a string

	// regexpTimeout bounds one match of a regular expression. goja runs
	// expressions that Go's regexp package cannot (backreferences,
	// lookaround) with regexp2, which backtracks: /(a+)+$/ takes
	// exponential time in one native call that no interrupt reaches.
	// regexp2 gives up after its timeout and goja then reports no match.
	regexpTimeout = 100 * time.Millisecond

	// maxCachedFunctions bounds the functions of conditions a runtime
	// keeps; past it the cache starts over.
	maxCachedFunctions = 512
)

func init() {
	// regexp2's only setting for this is a package variable, read when an
	// expression compiles; goja is its only user in pimhook.
	regexp2.DefaultMatchTimeout = regexpTimeout
}

//go:embed sandbox.js
var sandboxSource string

var sandboxProgram = sync.OnceValue(func() *goja.Program {
	return goja.MustCompile("sandbox.js", sandboxSource, true)
})

// jsRuntime is one goja realm, prepared by sandbox.js and frozen. Any
// condition may run in it, one at a time.
type jsRuntime struct {
	vm     *goja.Runtime
	freeze goja.Callable
	funcs  map[*condition]goja.Callable
	args   [1]goja.Value
}

func newRuntime(maxStack int) (rt *jsRuntime, err error) {
	defer func() {
		if p := recover(); p != nil {
			rt, err = nil, fmt.Errorf("prepare JavaScript runtime: panic: %v", p)
		}
	}()
	vm := goja.New()
	vm.SetMaxCallStackSize(maxStack)
	v, err := vm.RunProgram(sandboxProgram())
	if err != nil {
		return nil, fmt.Errorf("prepare JavaScript runtime: %w", err)
	}
	setup, _ := goja.AssertFunction(v)
	limits := vm.NewObject()
	for k, n := range map[string]int{
		"maxString": maxString, "maxElements": maxElements, "maxBytes": maxBytes,
		"maxArgs": maxArgs, "maxDepth": maxDepth, "maxPattern": maxPattern,
	} {
		if err := limits.Set(k, n); err != nil {
			return nil, fmt.Errorf("prepare JavaScript runtime: %w", err)
		}
	}
	depthOK := vm.ToValue(func(call goja.FunctionCall) goja.Value {
		return vm.ToValue(jsonDepthOK(call.Argument(0).String(), maxDepth))
	})
	rangeError := vm.Get("RangeError")
	guardLength := vm.ToValue(func(call goja.FunctionCall) goja.Value {
		orig, ok := goja.AssertFunction(call.Argument(0))
		if !ok {
			panic(vm.NewTypeError("guardLength: not a function"))
		}
		return vm.ToValue(func(c goja.FunctionCall) goja.Value {
			if this := c.This; this != nil && !goja.IsUndefined(this) && !goja.IsNull(this) {
				if l := this.ToObject(vm).Get("length"); l != nil && l.ToFloat() > maxElements {
					e, _ := vm.New(rangeError, vm.ToValue(fmt.Sprintf("array: more than %d elements (sandbox limit)", maxElements)))
					panic(e)
				}
			}
			v, err := orig(c.This, c.Arguments...)
			if err != nil {
				panic(err)
			}
			return v
		})
	})
	f, err := setup(goja.Undefined(), limits, depthOK, guardLength)
	if err != nil {
		return nil, fmt.Errorf("prepare JavaScript runtime: %w", err)
	}
	freeze, ok := goja.AssertFunction(f)
	if !ok {
		return nil, fmt.Errorf("prepare JavaScript runtime: sandbox.js returned %v", f)
	}
	return &jsRuntime{vm: vm, freeze: freeze, funcs: make(map[*condition]goja.Callable)}, nil
}

// function returns c's function in this realm, made and frozen on first
// use.
func (rt *jsRuntime) function(c *condition) (goja.Callable, error) {
	if f, ok := rt.funcs[c]; ok {
		return f, nil
	}
	v, err := rt.vm.RunProgram(c.program)
	if err != nil {
		return nil, err
	}
	if v, err = rt.freeze(goja.Undefined(), v); err != nil {
		return nil, err
	}
	f, ok := goja.AssertFunction(v)
	if !ok {
		return nil, fmt.Errorf("condition is not a function")
	}
	if len(rt.funcs) >= maxCachedFunctions {
		clear(rt.funcs)
	}
	rt.funcs[c] = f
	return f, nil
}

// jsonDepthOK reports whether JSON text s nests at most limit levels deep.
// It only counts brackets outside strings; JSON.parse checks the rest.
func jsonDepthOK(s string, limit int) bool {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[', '{':
			if depth++; depth > limit {
				return false
			}
		case ']', '}':
			depth--
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		}
	}
	return true
}

// pool keeps idle runtimes for reuse. A realm is frozen, so a condition
// leaves nothing in it for the next one.
type pool struct {
	idle     chan *jsRuntime
	maxStack int
}

// get returns an idle runtime, or a new one: made is then true.
func (p *pool) get() (rt *jsRuntime, made bool, err error) {
	select {
	case rt := <-p.idle:
		return rt, false, nil
	default:
		rt, err := newRuntime(p.maxStack)
		return rt, true, err
	}
}

func (p *pool) put(rt *jsRuntime) {
	select {
	case p.idle <- rt:
	default:
	}
}
