package filter_test

import (
	"errors"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dop251/goja"
	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
)

// heapAllocs returns the bytes the process has allocated so far.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// match compiles f on e and evaluates it on payload.
func match(t *testing.T, e *filter.Engine, f *pimhook.Filter, payload string) (bool, error) {
	t.Helper()
	c, err := e.Filter(f)
	if err != nil {
		t.Fatal(err)
	}
	return c.Match(parse(t, payload))
}

func TestSandboxTimeout(t *testing.T) {
	t.Parallel()
	e := filter.New(filter.Config{MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	start := time.Now()
	ok, err := match(t, e, and(&pimhook.Filter{Query: "$.a"}, &pimhook.Filter{Condition: "(v) => { while (true) {} }"}), `{"a": 1}`)
	if !errors.Is(err, filter.ErrTimeout) || ok {
		t.Fatalf("Match = %v, %v; want ErrTimeout", ok, err)
	}
	if want := "conditions[1]: condition ran past its 25ms budget"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stopped after %v, want about 25ms", d)
	}
	// An endless loop inside a callback, and one that catches exceptions,
	// are stopped too.
	for _, src := range []string{
		"(v) => [1].map(() => { for (;;) {} })",
		"(v) => { for (;;) { try { for (;;) {} } catch (e) {} finally { continue } } }",
		"function (v) { return JSON.parse('[1]', () => { while (true) {} }) }",
		"(v) => [3, 1, 2].sort(() => { while (true) {} })",
		"(v) => { throw { toString() { for (;;) {} } } }",
	} {
		if ok, err := match(t, e, &pimhook.Filter{Condition: src}, `{}`); !errors.Is(err, filter.ErrTimeout) || ok {
			t.Errorf("%s: Match = %v, %v; want ErrTimeout", src, ok, err)
		}
	}
}

// TestSandboxConcurrent checks that while one evaluation loops forever,
// others on other goroutines complete.
func TestSandboxConcurrent(t *testing.T) {
	t.Parallel()
	const loop = "(v) => { while (true) {} }"
	e := filter.New(filter.Config{Timeout: 5 * time.Second, Runtimes: 2, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	started := make(chan struct{})
	var once sync.Once
	e.SetOnCall(func(src string, _ *goja.Runtime, arg goja.Value) goja.Value {
		if src == loop {
			once.Do(func() { close(started) })
		}
		return arg
	})
	loopDone := make(chan error, 1)
	go func() {
		_, err := match(t, e, &pimhook.Filter{Condition: loop}, `{}`)
		loopDone <- err
	}()
	<-started
	f, err := e.Filter(cond("$.data.price", "(p) => p > 100"))
	if err != nil {
		t.Fatal(err)
	}
	doc := parse(t, shopPayload)
	var wg sync.WaitGroup
	errs := make(chan error, 4*50)
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if ok, err := f.Match(doc); !ok || err != nil {
					errs <- errors.Join(err, errors.New("Match = false"))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	select {
	case err := <-loopDone:
		t.Fatalf("the loop ended (%v) before the other evaluations; the test proves nothing", err)
	default:
	}
	if err := <-loopDone; !errors.Is(err, filter.ErrTimeout) {
		t.Errorf("loop: %v, want ErrTimeout", err)
	}
}

func TestSandboxMemory(t *testing.T) {
	t.Parallel()
	e := filter.New(filter.Config{Timeout: 10 * time.Second, MaxMemory: 32 << 20})
	t.Cleanup(e.Close)
	start := time.Now()
	ok, err := match(t, e, &pimhook.Filter{Condition: `(v) => { let a = []; while (true) a.push("x".repeat(1000)); }`}, `{}`)
	if !errors.Is(err, filter.ErrMemory) || ok {
		t.Fatalf("Match = %v, %v; want ErrMemory", ok, err)
	}
	if want := "condition ran past its 32 MiB memory budget"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stopped after %v", d)
	}
	// Objects, strings by concatenation, closures.
	for _, src := range []string{
		"(v) => { const m = new Map(); for (let i = 0; ; i++) m.set(i, { i }); }",
		"(v) => { let s = 'x'; const keep = []; for (;;) { s = s + s.slice(0, 1000) + 'y'; keep.push(s.length > 1e6 ? (s = 'x') : s); } }",
		"(v) => { let f = []; for (;;) { const a = [1, 2, 3]; f.push(() => a); } }",
	} {
		if ok, err := match(t, e, &pimhook.Filter{Condition: src}, `{}`); !errors.Is(err, filter.ErrMemory) || ok {
			t.Errorf("%s: Match = %v, %v; want ErrMemory", src, ok, err)
		}
	}
}

// TestSandboxCaps checks the built-ins that would allocate in proportion
// to an argument in one native step: each throws a RangeError, having
// allocated little.
func TestSandboxCaps(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, src, want string }{
		{"repeat", `(v) => "x".repeat(1e9)`, "repeat: more than 8388608 characters"},
		{"repeat long string", `(v) => "x".repeat(1e6).repeat(100)`, "repeat"},
		{"padStart", `(v) => "x".padStart(1e9)`, "padStart"},
		{"padEnd", `(v) => "x".padEnd(1e9, "ab")`, "padEnd"},
		{"new Array fill", `(v) => new Array(1e9).fill(0)`, "array: more than 1048576 elements"},
		{"Array fill", `(v) => Array(1e9).fill(0)`, "array: more than 1048576 elements"},
		{"sparse length", `(v) => { const a = []; a.length = 1e9; return a.indexOf(1) }`, "more than 1048576 elements"},
		{"sparse index", `(v) => { const a = []; a[4e9] = 1; return a.includes(2) }`, "more than 1048576 elements"},
		{"join", `(v) => Array(1000).fill("x".repeat(1e5)).join("")`, "join: more than 8388608 characters"},
		{"join separator", `(v) => Array(1e6).join("x".repeat(100))`, "join: more than 8388608 characters"},
		{"toString", `(v) => String(Array(1000).fill("x".repeat(1e5)))`, "join: more than"},
		{"template", "(v) => `${Array(1000).fill(\"x\".repeat(1e5))}`", "join: more than"},
		{"toLocaleString", `(v) => Array(1000).fill("x".repeat(1e5)).toLocaleString()`, "toLocaleString: more than"},
		{"nested join", `(v) => { const a = Array(100).fill("x".repeat(1e5)); return Array(100).fill(a).join() }`, "join: more than"},
		{"concat", `(v) => "".concat.apply("", Array(60000).fill("x".repeat(1e4)))`, "concat: more than"},
		{"array concat", `(v) => { const a = Array(1e6).fill(0); return a.concat(a, a) }`, "concat: more than 1048576 elements"},
		{"replaceAll", `(v) => "x".repeat(1e4).replaceAll("x", "y".repeat(1e4))`, "replaceAll: more than"},
		{"replace global", `(v) => "x".repeat(1e4).replace(/x/g, "y".repeat(1e4))`, "replace: more than"},
		{"replace $ pattern", "(v) => \"x\".repeat(1e4).replace(/x/g, \"$`$'\")", "replace: more than"},
		{"replace function", `(v) => { const big = "y".repeat(1e4); return "x".repeat(1e4).replace(/x/g, () => big) }`, "replace: more than"},
		{"String.raw", `(v) => String.raw({ raw: Array(1000).fill("x".repeat(1e5)) })`, "String.raw: more than"},
		{"split", `(v) => "x".repeat(2e6).split("")`, "split: more than 1048576 elements"},
		{"global match", `(v) => "x".repeat(2e6).match(/x/g)`, "match: more than 1048576 elements"},
		{"global match via symbol", `(v) => /x/g[Symbol.match]("x".repeat(2e6))`, "match: more than 1048576 elements"},
		{"string spread", `(v) => [..."x".repeat(2e6)]`, "string iterator: more than"},
		{"Array.from string", `(v) => Array.from("x".repeat(2e6))`, "string iterator: more than"},
		{"Array.from length", `(v) => Array.from({ length: 1e9 })`, "Array.from: more than"},
		{"Object.keys string", `(v) => Object.keys("x".repeat(2e6))`, "Object.keys: more than"},
		{"flat", `(v) => { const a = Array(1e4).fill(0); return Array(1e4).fill(a).flat() }`, "flat: more than"},
		{"normalize", `(v) => "x".repeat(1e6).normalize("NFKD")`, "normalize: more than"},
		{"apply", `(v) => Math.max.apply(null, { length: 1e9 })`, "apply: more than 65536 arguments"},
		{"Reflect.apply", `(v) => Reflect.apply(Math.max, null, { length: 1e9 })`, "Reflect.apply: more than 65536"},
		{"Reflect.construct", `(v) => Reflect.construct(Array, { length: 1e9 })`, "Reflect.construct: more than"},
		{"fromCharCode apply", `(v) => String.fromCharCode.apply(null, new Array(1e9))`, "apply: more than 65536"},
		{"ArrayBuffer", `(v) => new ArrayBuffer(1e9)`, "ArrayBuffer: more than 16777216 bytes"},
		{"Uint8Array", `(v) => new Uint8Array(1e9)`, "Uint8Array: more than 16777216 bytes"},
		{"Float64Array", `(v) => new Float64Array(3e6)`, "Float64Array: more than"},
		{"typed from", `(v) => Uint8Array.from({ length: 1e9 })`, "Uint8Array: more than"},
		{"typed of array-like", `(v) => new Int32Array({ length: 1e9 })`, "Int32Array: more than"},
		{"typed join", `(v) => new Uint8Array(1e6).join("x".repeat(100))`, "join: more than"},
		{"JSON.stringify", `(v) => JSON.stringify(Array(1e5).fill("x".repeat(1e3)))`, "JSON.stringify: more than"},
		{"JSON.stringify deep", `(v) => { let d = []; for (let i = 0; i < 2000; i++) d = [d]; return JSON.stringify(d) }`, "call stack"},
		{"JSON.parse deep", `(v) => JSON.parse("[".repeat(2e6))`, "JSON.parse: more than 1000 levels"},
		{"RegExp", `(v) => new RegExp("(".repeat(1e5) + ")".repeat(1e5))`, "RegExp: more than 65536 characters"},
		{"match pattern", `(v) => "x".match("(?:".repeat(1e5) + ")".repeat(1e5))`, "match: more than 65536"},
		{"eval", `(v) => eval("1")`, "EvalError: eval is disabled"},
		{"Function", `(v) => Function("return 1")()`, "EvalError: Function is disabled"},
		{"Function via constructor", `(v) => (() => 1).constructor("return 1")()`, "EvalError: Function is disabled"},
		{"generator constructor", `(v) => Object.getPrototypeOf(function* () {}).constructor("yield 1")`, "is disabled"},
	}
	e := filter.New(filter.Config{Timeout: 30 * time.Second, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok, err := match(t, e, &pimhook.Filter{Condition: tt.src}, `{}`)
			if err == nil || !strings.Contains(err.Error(), tt.want) || ok {
				t.Errorf("Match = %v, %v; want an error containing %q", ok, err, tt.want)
			}
		})
	}
	t.Run("allocates little", func(t *testing.T) {
		// Not parallel with the others' allocations: run alone on its
		// own engine, sequentially.
		t.Parallel()
		e := filter.New(filter.Config{Timeout: 5 * time.Second, MaxMemory: noMemoryBudget})
		t.Cleanup(e.Close)
		for _, src := range []string{`(v) => "x".repeat(1e9)`, `(v) => new Array(1e9).fill(0)`, `(v) => new Uint8Array(2e9)`} {
			if _, err := match(t, e, &pimhook.Filter{Condition: "(v) => 1"}, `{}`); err != nil {
				t.Fatal(err) // a runtime is ready
			}
			before := heapAllocs()
			if _, err := match(t, e, &pimhook.Filter{Condition: src}, `{}`); err == nil {
				t.Fatalf("%s: no error", src)
			}
			// Other tests allocate meanwhile; a gigabyte would show.
			if d := heapAllocs() - before; d > 512<<20 {
				t.Errorf("%s: the process allocated %d MiB", src, d>>20)
			}
		}
	})
}

// TestSandboxUnderCaps checks that the capped built-ins still work below
// their limits, like the originals.
func TestSandboxUnderCaps(t *testing.T) {
	t.Parallel()
	tests := []string{
		`(v) => "ab".repeat(3) === "ababab" && "x".repeat(0) === "" && "".repeat(1e9) === ""`,
		`(v) => "5".padStart(3, "0") === "005" && "5".padEnd(3) === "5  " && "abc".padStart(2) === "abc" && "x".padStart(1e9, "") === "x"`,
		`(v) => [1, [2, [3, null]], undefined].join() === "1,2,3,," && [1, 2].join("-") === "1-2" && [].join() === ""`,
		`(v) => String([1, [2, 3]]) === "1,2,3" && [1, 2] + "" === "1,2" && Array.prototype.join.call({ length: 2, 0: "a", 1: "b" }) === "a,b"`,
		`(v) => [1234.5].toLocaleString() !== "" && "a".concat("b", 1, null) === "ab1null"`,
		`(v) => "a-b-c".replaceAll("-", "+") === "a+b+c" && "aXbX".replace(/X/g, "$&$&") === "aXXbXX" && "ab".replace("b", (m) => m.toUpperCase()) === "aB"`,
		"(v) => \"abc\".replace(\"b\", \"[$`|$']\") === \"a[a|c]c\" && \"x1y2\".replace(/(\\d)/g, \"<$1>\") === \"x<1>y<2>\"",
		`(v) => "a,b,,c".split(",").length === 4 && "abc".split("").length === 3 && "a1b2c".split(/\d/, 2).join() === "a,b"`,
		`(v) => "xAxBx".match(/x/g).length === 3 && "abc".match(/z/g) === null && "aaa".match(/a/).index === 0 && "x".repeat(7000).match(/x/g).length === 7000`,
		`(v) => "x".repeat(7000).match(/(?:)/g).length === 7001 && "x".repeat(2e6).match(/x/).index === 0`,
		`(v) => [..."héllo"].length === 5 && Array.from("ab").join() === "a,b" && Array.from({ length: 3 }, (_, i) => i).join() === "0,1,2"`,
		`(v) => [[1, [2]], [3]].flat().length === 3 && [[1, [2, [3]]]].flat(Infinity).join() === "1,2,3" && [1, 2].flatMap((x) => [x, x]).length === 4`,
		`(v) => Math.max.apply(null, [1, 3, 2]) === 3 && Reflect.apply(Math.min, null, [4, 5]) === 4 && Reflect.construct(Date, [0]).getTime() === 0`,
		`(v) => new Uint8Array(4).length === 4 && new Float64Array([1, 2]).join() === "1,2" && Uint8Array.from([1, 2]).length === 2 && new Uint8Array(new ArrayBuffer(8)).length === 8`,
		`(v) => new Uint8Array(2) instanceof Uint8Array && Object.getPrototypeOf(Int8Array.prototype) === Object.getPrototypeOf(Uint8Array.prototype) && Uint8Array.BYTES_PER_ELEMENT === 1`,
		`(v) => JSON.stringify({ a: [1, "x", null, true], b: { toJSON: () => 5 } }) === '{"a":[1,"x",null,true],"b":5}' && JSON.stringify({ a: 1 }, null, 2).includes("\n  ")`,
		`(v) => JSON.parse('{"a": [1, {"b": "]"}]}').a[1].b === "]" && JSON.parse("[1, 2]", (k, x) => typeof x === "number" ? x * 2 : x)[1] === 4`,
		`(v) => new RegExp("a+", "g").global && RegExp("b").test("abc") && /x/ instanceof RegExp && new RegExp(/y/i).flags === "i" && "aXb".search("X") === 1`,
		`(v) => [...'ab'.matchAll(/./g)].length === 2 && Object.keys("abc").join() === "0,1,2" && Object.entries({ a: 1 })[0][1] === 1`,
		`(v) => String.raw` + "`a\\n${1}b`" + ` === "a\\n1b" && escape("ä") === "%E4" && encodeURIComponent("a b") === "a%20b"`,
		`(v) => [3, 1, 2].sort().join() === "1,2,3" && [1, 2, 3].map((x) => x * 2).filter((x) => x > 2).reduce((a, b) => a + b) === 10`,
		`(v) => [1, 2, 3].indexOf(2) === 1 && [1, 2, 3].lastIndexOf(3) === 2 && [1, 2].includes(2) && [1, 2, 3].slice(1).length === 2 && [1, 2, 3].at(-1) === 3`,
		`(v) => { const a = [1, 2, 3]; a.splice(1); a.push(4, 5); a.unshift(0); return a.join() === "0,1,4,5" && [1, 2, 3].with(0, 9)[0] === 9 }`,
		`(v) => { let n = 0; for (const x of [1, 2, 3]) n += x; for (const k in { a: 1, b: 2 }) n += k.length; return n === 8 }`,
		`(v) => typeof Array.prototype.map === "function" && Array.prototype.map.name === "map" && Array.prototype.map.length === 1 && String.prototype.repeat.name === "repeat"`,
		`(v) => Array.prototype[Symbol.iterator] === Array.prototype.values && !("prototype" in String.prototype.repeat)`,
		`(v) => (function (a, b) { return arguments.length })(1, 2) === 2 && [1, 2, 3].toString() === "1,2,3"`,
		`(v) => new Date(0).toISOString() === "1970-01-01T00:00:00.000Z" && Math.abs(-2) === 2 && Number("12") === 12 && parseInt("0x10") === 16`,
		`(v) => "ß".toUpperCase() === "SS" && "É".toLowerCase() === "é" && "e\u0301".normalize() === "é"`,
		`(v) => (() => { class A extends Array {} ; const a = new A(); a.push(1); return a.length === 1 && a instanceof A })()`,
		`(v) => (() => { class B extends Uint8Array {} ; return new B(2) instanceof B })()`,
		`(v) => [1, 2].concat([3], 4).length === 4 && Array.of(7).length === 1 && Array.isArray([]) && new Array(3).length === 3`,
		`(v) => new Array(1e9).length === 1e9`,
	}
	e := filter.New(filter.Config{Timeout: 5 * time.Second, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	for _, src := range tests {
		t.Run(src, func(t *testing.T) {
			t.Parallel()
			ok, err := match(t, e, &pimhook.Filter{Condition: src}, `{}`)
			if !ok || err != nil {
				t.Errorf("Match = %v, %v; want true", ok, err)
			}
		})
	}
}

// TestSandboxFrozen checks that a condition cannot leave state in a
// runtime for another condition, or for another call of itself.
func TestSandboxFrozen(t *testing.T) {
	t.Parallel()
	e := filter.New(filter.Config{Timeout: testTimeout, Runtimes: 1, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	tamper := `(v) => {
		const tries = [
			() => { globalThis.leak = 1 },
			() => { leak2 = 1 },
			() => { Array.prototype.leak = 1 },
			() => { Object.prototype.leak = 1 },
			() => { Math.random = () => 4 },
			() => { JSON.parse = null },
			() => { Object.defineProperty(globalThis, "leak3", { value: 1 }) },
			() => { Object.setPrototypeOf(Array.prototype, null) },
			() => { delete globalThis.Math },
			() => { Object.getPrototypeOf([][Symbol.iterator]()).next = null },
			() => { Object.getPrototypeOf(function* () {}).prototype.leak = 1 },
			() => { Symbol.prototype.leak = 1 },
			() => { Error.prototype.message = "leak" },
			() => { RegExp.prototype.exec = null },
			() => { Array.prototype.join = null },
			() => { Function.prototype.call = null },
			() => { String.prototype.repeat = () => "leak" },
			() => { Date.now = () => 0 },
			() => { Promise.prototype.then = null },
			() => { Reflect.apply = null },
			() => { Uint8Array.prototype.leak = 1 },
			() => { Object.getPrototypeOf(Uint8Array).prototype.leak = 1 },
		];
		for (const f of tries) { try { f() } catch (e) {} }
		return true;
	}`
	check := `(v) => typeof leak === "undefined" && typeof leak2 === "undefined" && typeof leak3 === "undefined" &&
		[].leak === undefined && ({}).leak === undefined && Math.random() !== 4 && typeof JSON.parse === "function" &&
		Object.getPrototypeOf(Array.prototype) === Object.prototype && typeof Math === "object" &&
		[...[1, 2]].length === 2 && Symbol().leak === undefined && new Error("m").message === "m" &&
		/a/.exec("a") !== null && [1, 2].join() === "1,2" && typeof Function.prototype.call === "function" &&
		"ab".repeat(2) === "abab" && Date.now() > 0 && typeof Promise.prototype.then === "function" &&
		typeof Reflect.apply === "function" && new Uint8Array(1).leak === undefined &&
		(function* () {})().leak === undefined`
	strictTamper := `(v) => { "use strict"; Array.prototype.leak = 1; }`
	counter := `function count(v) { count.calls = (count.calls || 0) + 1; count.prototype.calls = count.calls; return count.calls === 1 && count.prototype.calls === undefined }`
	for range 3 {
		if ok, err := match(t, e, &pimhook.Filter{Condition: tamper}, `{}`); !ok || err != nil {
			t.Fatalf("tamper: %v, %v", ok, err)
		}
		if ok, err := match(t, e, &pimhook.Filter{Condition: check}, `{}`); !ok || err != nil {
			t.Fatalf("check after tamper: %v, %v", ok, err)
		}
		if _, err := match(t, e, &pimhook.Filter{Condition: strictTamper}, `{}`); err == nil || !strings.Contains(err.Error(), "TypeError") {
			t.Errorf("strict tamper: %v, want a TypeError", err)
		}
		if ok, err := match(t, e, &pimhook.Filter{Condition: counter}, `{}`); ok || err != nil {
			// The function is frozen: count.calls stays undefined, so the
			// second comparison, count.calls === 1, fails every time.
			t.Errorf("counter: %v, %v; want false, nil", ok, err)
		}
	}
	// Everything reachable from the realm, and from values of every kind,
	// is frozen.
	allFrozen := `(v) => {
		const roots = [globalThis, [][Symbol.iterator](), new Map().entries(), new Set().values(), ""[Symbol.iterator](),
			/a/[Symbol.matchAll](""), (function* () {}), (async function () {}), (async () => {})(),
			new Uint8Array(1).values(), new Error(), Symbol(), 1n, Promise.resolve(), new Proxy({}, {}), arguments0()];
		function arguments0() { return arguments }
		// The roots but globalThis are fresh values: only what they inherit
		// is shared.
		const seen = new Set(), todo = [globalThis];
		for (const r of roots) if (r !== globalThis) todo.push(Object.getPrototypeOf(Object(r)));
		const notFrozen = [];
		while (todo.length > 0) {
			const o = todo.pop();
			if (o === null || (typeof o !== "object" && typeof o !== "function") || seen.has(o)) continue;
			seen.add(o);
			if (!Object.isFrozen(o)) notFrozen.push(o);
			for (const k of Reflect.ownKeys(o)) {
				const d = Object.getOwnPropertyDescriptor(o, k);
				if ("value" in d) todo.push(d.value); else todo.push(d.get, d.set);
			}
			todo.push(Object.getPrototypeOf(o));
		}
		if (notFrozen.length > 0) throw new Error(notFrozen.length + " objects are not frozen, e.g. " + String(Object.getOwnPropertyNames(notFrozen[0])));
		if (seen.size < 400) throw new Error("only " + seen.size + " objects");
		return true;
	}`
	slow := filter.New(filter.Config{Timeout: 10 * time.Second, MaxMemory: noMemoryBudget})
	t.Cleanup(slow.Close)
	if ok, err := match(t, slow, &pimhook.Filter{Condition: allFrozen}, `{}`); !ok || err != nil {
		t.Errorf("all frozen: %v, %v", ok, err)
	}
	if ok, err := match(t, e, &pimhook.Filter{Condition: `(v) => typeof require === "undefined" && typeof console === "undefined" && typeof process === "undefined" && typeof setTimeout === "undefined" && typeof fetch === "undefined"`}, `{}`); !ok || err != nil {
		t.Errorf("host objects: %v, %v", ok, err)
	}
}

// TestSandboxInterruptReuse checks that a runtime the watchdog
// interrupted, or nearly did, carries no stale interrupt into its next
// evaluation: an evaluation that fails must have run past its budget.
func TestSandboxInterruptReuse(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Millisecond
	e := filter.New(filter.Config{Timeout: timeout, Runtimes: 1, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	doc := parse(t, `{"n": 1}`)
	var slow []*filter.Filter
	for _, n := range []string{"1e3", "1e4", "3e4", "1e5", "1e9"} {
		f, err := e.Filter(cond("$.n", "(v) => { let s = 0; for (let i = 0; i < "+n+"; i++) s += i; return s >= 0 }"))
		if err != nil {
			t.Fatal(err)
		}
		slow = append(slow, f)
	}
	quick, err := e.Filter(cond("$.n", "(v) => v === 1"))
	if err != nil {
		t.Fatal(err)
	}
	// Warm up: the first evaluation makes the runtime, which a loaded
	// machine may take longer than the budget for.
	for i := 0; ; i++ {
		ok, err := quick.Match(doc)
		if err == nil && ok {
			break
		}
		if err == nil || !errors.Is(err, filter.ErrTimeout) || i == 20 {
			t.Fatalf("warm up, evaluation %d: %v, %v", i, ok, err)
		}
	}
	for i := range 100 {
		if _, err := slow[i%len(slow)].Match(doc); err != nil && !errors.Is(err, filter.ErrTimeout) {
			t.Fatalf("slow: %v", err)
		}
		start := time.Now()
		ok, err := quick.Match(doc)
		if err != nil && time.Since(start) < timeout {
			t.Fatalf("quick evaluation %d failed after %v, within its budget: %v", i, time.Since(start), err)
		}
		if err == nil && !ok {
			t.Fatalf("quick evaluation %d: false", i)
		}
	}
}

func TestSandboxStack(t *testing.T) {
	t.Parallel()
	e := filter.New(filter.Config{Timeout: testTimeout, MaxStack: 64, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	for _, src := range []string{
		"function f(v) { return f(v) }",
		"(v) => { const f = () => f(); return f() }",
		"(v) => { const o = { get x() { return this.x } }; return o.x }",
		"(v) => { const a = []; a.push(a); return String(a) }",
		"(v) => { const p = new Proxy({}, { get: (t, k, r) => r[k] }); return p.x }",
	} {
		ok, err := match(t, e, &pimhook.Filter{Condition: src}, `{}`)
		if err == nil || ok {
			t.Errorf("%s: Match = %v, %v; want an error", src, ok, err)
		}
	}
	ok, err := match(t, e, &pimhook.Filter{Condition: "(v) => { const f = (n) => n ? f(n - 1) : 'done'; return f(40) === 'done' }"}, `{}`)
	if !ok || err != nil {
		t.Errorf("recursion within the limit: %v, %v", ok, err)
	}
}

// TestSandboxRegexp checks that a backtracking regular expression cannot
// hold an evaluation much past its budget.
func TestSandboxRegexp(t *testing.T) {
	t.Parallel()
	e := filter.New(filter.Config{MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	start := time.Now()
	// The lookahead sends the expression to regexp2, which backtracks.
	ok, err := match(t, e, &pimhook.Filter{Condition: `(v) => /^(a+)+(?=b)/.test("a".repeat(30))`}, `{}`)
	if !errors.Is(err, filter.ErrTimeout) || ok {
		t.Errorf("Match = %v, %v; want ErrTimeout", ok, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stopped after %v", d)
	}
}

// TestSandboxPanic checks that a panic inside goja fails the evaluation,
// and that the next one, on a fresh runtime, works.
func TestSandboxPanic(t *testing.T) {
	t.Parallel()
	e := filter.New(filter.Config{Runtimes: 1, MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	const boom = "(f) => typeof f === 'function' ? f() : true"
	e.SetOnCall(func(src string, vm *goja.Runtime, arg goja.Value) goja.Value {
		if src != boom {
			return arg
		}
		return vm.ToValue(func(goja.FunctionCall) goja.Value { panic("boom") })
	})
	ok, err := match(t, e, &pimhook.Filter{Condition: boom}, `{}`)
	if err == nil || ok || !strings.Contains(err.Error(), "internal error: boom") {
		t.Fatalf("Match = %v, %v; want an internal error", ok, err)
	}
	if ok, err := match(t, e, &pimhook.Filter{Condition: "(v) => 1 + 1 === 2"}, `{}`); !ok || err != nil {
		t.Errorf("after the panic: %v, %v", ok, err)
	}
}

// TestSandboxQueryBudget checks that a query whose cost grows with the
// square of the document is abandoned at the deadline.
func TestSandboxQueryBudget(t *testing.T) {
	t.Parallel()
	e := filter.New(filter.Config{MaxMemory: noMemoryBudget})
	t.Cleanup(e.Close)
	var b strings.Builder
	b.WriteString(`{"items": [`)
	for i := range 3000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"a": {"b": [1, 2, 3]}}`)
	}
	b.WriteString(`]}`)
	start := time.Now()
	ok, err := match(t, e, and(&pimhook.Filter{Query: "$.items"}, &pimhook.Filter{Query: "$..*[?count($..*) > 0]"}), b.String())
	if !errors.Is(err, filter.ErrTimeout) || ok {
		t.Fatalf("Match = %v, %v; want ErrTimeout", ok, err)
	}
	if want := "conditions[1]: query ran past its 25ms budget"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stopped after %v", d)
	}
}

// TestSandboxValuesBudget checks that a query cannot pass a condition more
// values than the memory budget allows.
func TestSandboxValuesBudget(t *testing.T) {
	t.Parallel()
	e := filter.New(filter.Config{MaxMemory: 8 << 10})
	t.Cleanup(e.Close)
	payload := `{"a": [` + strings.Repeat(`[1, 2, 3, 4], `, 100) + `0]}`
	ok, err := match(t, e, cond("$..*", "(v) => v.length > 0"), payload)
	if !errors.Is(err, filter.ErrMemory) || ok {
		t.Fatalf("Match = %v, %v; want ErrMemory", ok, err)
	}
	if want := "query selected more than 128 values to pass to conditions"; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to contain %q", err, want)
	}
}

// TestEngineClose checks that Close can be called twice and that an
// engine used after Close still evaluates.
func TestEngineClose(t *testing.T) {
	t.Parallel()
	e := filter.New(filter.Config{MaxMemory: noMemoryBudget})
	e.Close()
	if ok, err := match(t, e, cond("$.a", "(v) => v === 1"), `{"a": 1}`); !ok || err != nil {
		t.Errorf("Match = %v, %v", ok, err)
	}
	e.Close()
	e.Close()
	if ok, err := match(t, e, &pimhook.Filter{Condition: "(v) => { for (;;) {} }"}, `{}`); !errors.Is(err, filter.ErrTimeout) || ok {
		t.Errorf("Match after Close = %v, %v; want ErrTimeout", ok, err)
	}
	e.Close()
}
