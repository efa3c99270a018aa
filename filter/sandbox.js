// sandbox.js prepares a fresh goja realm for conditions (see sandbox.go and
// docs/filters.md). It caps the built-ins that allocate, in one native step
// that the watchdog cannot interrupt, in proportion to an argument rather
// than to what the condition already holds; it disables eval and the
// Function constructors; then it freezes every object reachable from the
// realm. It returns the function that freezes each condition's function.
(function (limits, checkJSONDepth, guardLength) {
	"use strict";
	const MAX_STRING = limits.maxString;
	const MAX_ELEMENTS = limits.maxElements;
	const MAX_BYTES = limits.maxBytes;
	const MAX_ARGS = limits.maxArgs;
	const MAX_DEPTH = limits.maxDepth;
	const MAX_PATTERN = limits.maxPattern;

	const G = globalThis;
	const apply = Reflect.apply;
	const construct = Reflect.construct;
	const ownKeys = Reflect.ownKeys;
	const defineProperty = Object.defineProperty;
	const getDesc = Object.getOwnPropertyDescriptor;
	const getProto = Object.getPrototypeOf;
	const setProto = Object.setPrototypeOf;
	const freeze = Object.freeze;
	const isFrozen = Object.isFrozen;
	const isArray = Array.isArray;
	const ToObject = Object;
	const ToString = String;
	const trunc = Math.trunc;
	const SetCtor = Set;
	const arrayPush = Array.prototype.push;
	const arrayJoin = Array.prototype.join;
	const stringIndexOf = String.prototype.indexOf;
	const isView = ArrayBuffer.isView;
	const symIterator = Symbol.iterator;

	function fail(what, limit, unit) {
		return new RangeError(what + ": more than " + limit + " " + unit + " (sandbox limit)");
	}
	function toLength(v) {
		v = +v;
		if (!(v > 0)) return 0;
		return v > 9007199254740991 ? 9007199254740991 : trunc(v);
	}
	function toInteger(v) {
		v = +v;
		return v !== v ? 0 : trunc(v);
	}
	function lengthOf(o) {
		return o === null || o === undefined ? 0 : toLength(o.length);
	}
	function checkElements(what, n) {
		if (n > MAX_ELEMENTS) throw fail(what, MAX_ELEMENTS, "elements");
	}
	function checkString(what, n) {
		if (n > MAX_STRING) throw fail(what, MAX_STRING, "characters");
	}

	// replace puts method key of obj's place with make(original), keeping
	// the original's name and length; one original gets one replacement.
	const replaced = new Map();
	function replace(obj, key, make) {
		const d = getDesc(obj, key);
		if (d === undefined || typeof d.value !== "function") return;
		const orig = d.value;
		let w = replaced.get(orig);
		if (w === undefined) {
			w = make(orig);
			defineProperty(w, "name", { value: orig.name, configurable: true });
			defineProperty(w, "length", { value: orig.length, configurable: true });
			replaced.set(orig, w);
		}
		defineProperty(obj, key, { value: w, writable: d.writable, enumerable: d.enumerable, configurable: d.configurable });
	}
	// method makes a function that, like a built-in method, has no
	// prototype and cannot be called with new.
	function method(f) {
		return { m() { return apply(f, this, arguments); } }.m;
	}
	// Methods defined by object literals below are used directly: they are
	// not constructors either.

	// Arrays: every method of Array.prototype (and of typed arrays) refuses
	// a receiver longer than MAX_ELEMENTS, so that no native loop runs over
	// a huge sparse array (new Array(1e9).fill(0), a.length = 1e9).
	// guardLength(orig), in Go (sandbox.go) for speed, returns orig
	// behind that check.
	const join = {
		join(separator) {
			const o = ToObject(this);
			const len = lengthOf(o);
			checkElements("join", len);
			const sep = separator === undefined ? "," : ToString(separator);
			let total = len > 0 ? sep.length * (len - 1) : 0;
			checkString("join", total);
			const parts = [];
			for (let i = 0; i < len; i++) {
				const e = o[i];
				const s = e === undefined || e === null ? "" : ToString(e);
				total += s.length;
				checkString("join", total);
				parts[i] = s;
			}
			return apply(arrayJoin, parts, [sep]);
		}
	}.join;
	const toLocaleString = {
		toLocaleString() {
			const o = ToObject(this);
			const len = lengthOf(o);
			checkElements("toLocaleString", len);
			let total = len > 0 ? len - 1 : 0;
			const parts = [];
			for (let i = 0; i < len; i++) {
				const e = o[i];
				const s = e === undefined || e === null ? "" : ToString(e.toLocaleString());
				total += s.length;
				checkString("toLocaleString", total);
				parts[i] = s;
			}
			return apply(arrayJoin, parts, [","]);
		}
	}.toLocaleString;
	// flatCount bounds the length of a.flat(depth), counting holes too.
	function flatCount(a, depth, n) {
		const len = lengthOf(a);
		checkElements("flat", len);
		if (depth <= 0) {
			checkElements("flat", n + len);
			return n + len;
		}
		for (let i = 0; i < len; i++) {
			const e = a[i];
			if (isArray(e)) n = flatCount(e, depth - 1, n);
			else checkElements("flat", ++n);
		}
		return n;
	}
	const special = {
		__proto__: null,
		join: () => join,
		toLocaleString: () => toLocaleString,
		concat: (orig) => ({
			concat() {
				let n = lengthOf(ToObject(this));
				for (let i = 0; i < arguments.length; i++) {
					const a = arguments[i];
					n += isArray(a) ? lengthOf(a) : 1;
				}
				checkElements("concat", n);
				return apply(orig, this, arguments);
			}
		}).concat,
		push: (orig) => ({
			push() {
				checkElements("push", lengthOf(ToObject(this)) + arguments.length);
				return apply(orig, this, arguments);
			}
		}).push,
		unshift: (orig) => ({
			unshift() {
				checkElements("unshift", lengthOf(ToObject(this)) + arguments.length);
				return apply(orig, this, arguments);
			}
		}).unshift,
		flat: (orig) => ({
			flat(depth) {
				const o = ToObject(this);
				let d = depth === undefined ? 1 : toInteger(depth);
				if (d > MAX_DEPTH) d = MAX_DEPTH;
				flatCount(o, d, 0);
				return apply(orig, o, [d]);
			}
		}).flat,
	};
	function guardPrototype(proto) {
		for (const key of ownKeys(proto)) {
			if (key === "constructor") continue;
			const make = typeof key === "string" && special[key] !== undefined ? special[key] : guardLength;
			replace(proto, key, make);
		}
	}
	guardPrototype(Array.prototype);
	replace(Array, "from", (orig) => ({
		from(items) {
			if (items !== null && items !== undefined) {
				const o = ToObject(items);
				const it = o[symIterator];
				if (it === undefined || it === null) checkElements("Array.from", lengthOf(o));
			}
			return apply(orig, this, arguments);
		}
	}).from);

	// Strings: results longer than MAX_STRING characters are refused
	// before they are built.
	function thisString(t) {
		if (t === null || t === undefined) throw new TypeError("String.prototype method called on null or undefined");
		return ToString(t);
	}
	function grows(factor) {
		return (orig) => ({
			m() {
				const s = thisString(this);
				checkString(orig.name, s.length * factor);
				return apply(orig, s, arguments);
			}
		}).m;
	}
	const SP = String.prototype;
	replace(SP, "repeat", (orig) => ({
		repeat(count) {
			const s = thisString(this);
			const n = toInteger(count);
			if (n > 0 && s.length > 0) checkString("repeat", s.length * n);
			return apply(orig, s, [n]);
		}
	}).repeat);
	for (const name of ["padStart", "padEnd"]) {
		replace(SP, name, (orig) => ({
			m(maxLength, fill) {
				const s = thisString(this);
				const n = toLength(maxLength);
				if (n > s.length) {
					const f = fill === undefined ? " " : ToString(fill);
					if (f.length > 0) checkString(name, n);
					return apply(orig, s, [n, f]);
				}
				return s;
			}
		}).m);
	}
	replace(SP, "concat", (orig) => ({
		concat() {
			const s = thisString(this);
			checkElements("concat", arguments.length);
			const parts = [];
			let total = s.length;
			for (let i = 0; i < arguments.length; i++) {
				const a = ToString(arguments[i]);
				total += a.length;
				checkString("concat", total);
				parts[i] = a;
			}
			return apply(orig, s, parts);
		}
	}).concat);
	for (const name of ["normalize"]) replace(SP, name, grows(18));
	for (const name of ["toUpperCase", "toLowerCase", "toLocaleUpperCase", "toLocaleLowerCase"]) replace(SP, name, grows(3));
	replace(SP, symIterator, (orig) => ({
		[symIterator]() {
			const s = thisString(this);
			checkElements("string iterator", s.length);
			return apply(orig, s, []);
		}
	})[symIterator]);

	// replaceBound bounds the result of replacing pattern in s with the
	// string r, for `count` matches at most: "$&" and "$n" add at most the
	// matched text (less than s in all), "$`" and "$'" up to s per match.
	function replaceBound(what, s, r, matches) {
		let plain = 0, whole = 0, perMatch = r.length;
		for (let i = apply(stringIndexOf, r, ["$"]); i >= 0; i = apply(stringIndexOf, r, ["$", i + 1])) {
			const c = r[i + 1];
			if (c === "`" || c === "'") whole++;
			else if (c === "&" || c === "<" || (c >= "0" && c <= "9")) plain++;
		}
		const bound = s.length + matches * perMatch + plain * s.length + whole * matches * s.length;
		checkString(what, bound);
	}
	// countReplacer wraps a replacer function so that the strings it
	// returns, which the native replace joins at the end, stay under
	// MAX_STRING in all.
	function countReplacer(what, s, f) {
		let total = s.length;
		return function () {
			const v = ToString(apply(f, this, arguments));
			total += v.length;
			checkString(what, total);
			return v;
		};
	}
	function boundReplacement(what, s, replacement, all) {
		if (typeof replacement === "function") return countReplacer(what, s, replacement);
		const r = ToString(replacement);
		replaceBound(what, s, r, all ? s.length + 1 : 1);
		return r;
	}
	for (const name of ["replace", "replaceAll"]) {
		replace(SP, name, (orig) => ({
			m(pattern, replacement) {
				const s = thisString(this);
				if (pattern !== null && typeof pattern === "object") {
					// A RegExp: its Symbol.replace, below, bounds the result.
					return apply(orig, s, arguments);
				}
				const p = ToString(pattern);
				return apply(orig, s, [p, boundReplacement(name, s, replacement, name === "replaceAll")]);
			}
		}).m);
	}
	replace(RegExp.prototype, Symbol.replace, (orig) => ({
		[Symbol.replace](string, replacement) {
			const s = ToString(string);
			const all = this !== null && typeof this === "object" && !!this.global;
			return apply(orig, this, [s, boundReplacement("replace", s, replacement, all)]);
		}
	})[Symbol.replace]);
	function guardSplit(isRegExpMethod) {
		return (orig) => ({
			m(a, limit) {
				if (this === null || this === undefined) return apply(orig, this, arguments);
				const lim = limit === undefined ? MAX_ELEMENTS + 1 : Math.min(limit >>> 0, MAX_ELEMENTS + 1);
				const r = isRegExpMethod ? apply(orig, this, [ToString(a), lim]) : apply(orig, thisString(this), [a, lim]);
				checkElements("split", r.length);
				return r;
			}
		}).m;
	}
	replace(SP, "split", guardSplit(false));
	replace(RegExp.prototype, Symbol.split, guardSplit(true));
	// A global match collects every match in one native step: one per
	// character at most, so it is refused on longer strings.
	replace(RegExp.prototype, Symbol.match, (orig) => ({
		[Symbol.match](string) {
			const s = ToString(string);
			if (this !== null && typeof this === "object" && this.global) checkElements("match", s.length + 1);
			return apply(orig, this, [s]);
		}
	})[Symbol.match]);
	// String.prototype.match, matchAll and search make a RegExp of a
	// string pattern with the original constructor: cap it here.
	for (const name of ["match", "matchAll", "search"]) {
		replace(SP, name, (orig) => ({
			m(pattern) {
				if (pattern === null || pattern === undefined || (typeof pattern !== "object" && typeof pattern !== "function")) {
					const p = pattern === undefined ? pattern : ToString(pattern);
					if (p !== undefined && p.length > MAX_PATTERN) throw fail(name, MAX_PATTERN, "characters of pattern");
					return apply(orig, this, [p]);
				}
				return apply(orig, this, arguments);
			}
		}).m);
	}
	replace(String, "raw", () => ({
		raw(template) {
			const raw = ToObject(ToObject(template).raw);
			const len = lengthOf(raw);
			checkElements("String.raw", len);
			const parts = [];
			let total = 0;
			for (let i = 0; i < len; i++) {
				const seg = ToString(raw[i]);
				total += seg.length;
				checkString("String.raw", total);
				parts[parts.length] = seg;
				if (i + 1 < len && i + 1 < arguments.length) {
					const sub = ToString(arguments[i + 1]);
					total += sub.length;
					checkString("String.raw", total);
					parts[parts.length] = sub;
				}
			}
			return apply(arrayJoin, parts, [""]);
		}
	}).raw);
	for (const name of ["escape", "encodeURI", "encodeURIComponent"]) {
		replace(G, name, (orig) => ({
			m(s) {
				const t = ToString(s);
				checkString(name, t.length * 9);
				return apply(orig, undefined, [t]);
			}
		}).m);
	}

	// RegExp: a pattern longer than MAX_PATTERN characters is refused
	// (regexp2 compiles deeply nested patterns with deep recursion).
	function checkPattern(p) {
		if (p !== null && typeof p === "object") {
			if (typeof p.source === "string" && p.source.length > MAX_PATTERN) throw fail("RegExp", MAX_PATTERN, "characters");
			return p;
		}
		if (p === undefined) return p;
		const s = ToString(p);
		if (s.length > MAX_PATTERN) throw fail("RegExp", MAX_PATTERN, "characters");
		return s;
	}
	function wrapConstructor(name, check) {
		const Orig = G[name];
		if (typeof Orig !== "function") return;
		const W = {
			[name]: function () {
				const args = check(arguments);
				if (new.target === undefined) return apply(Orig, undefined, args);
				return construct(Orig, args, new.target === W ? Orig : new.target);
			}
		}[name];
		for (const key of ownKeys(Orig)) {
			if (key === "length" || key === "name" || key === "prototype") continue;
			defineProperty(W, key, getDesc(Orig, key));
		}
		defineProperty(W, "length", { value: Orig.length, configurable: true });
		defineProperty(W, "prototype", { value: Orig.prototype, writable: false, enumerable: false, configurable: false });
		defineProperty(Orig.prototype, "constructor", { value: W, writable: true, enumerable: false, configurable: true });
		setProto(W, getProto(Orig));
		defineProperty(G, name, { value: W, writable: true, enumerable: false, configurable: true });
		return W;
	}
	wrapConstructor("RegExp", (args) => [checkPattern(args[0]), args[1]]);
	replace(RegExp.prototype, "compile", (orig) => ({
		compile(pattern, flags) { return apply(orig, this, [checkPattern(pattern), flags]); }
	}).compile);

	// ArrayBuffer and typed arrays: at most MAX_BYTES bytes each.
	function checkBytes(what, n) {
		if (n > MAX_BYTES) throw fail(what, MAX_BYTES, "bytes");
	}
	wrapConstructor("ArrayBuffer", (args) => {
		checkBytes("ArrayBuffer", toInteger(args[0]));
		const o = args[1];
		if (o !== null && typeof o === "object" && o.maxByteLength !== undefined) checkBytes("ArrayBuffer", toInteger(o.maxByteLength));
		return args;
	});
	if (typeof SharedArrayBuffer === "function") {
		wrapConstructor("SharedArrayBuffer", (args) => {
			checkBytes("SharedArrayBuffer", toInteger(args[0]));
			return args;
		});
	}
	const typed = ["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array", "Float16Array"];
	let TypedArrayPrototype;
	for (const name of typed) {
		const Orig = G[name];
		if (typeof Orig !== "function") continue;
		TypedArrayPrototype = getProto(Orig.prototype);
		const size = Orig.BYTES_PER_ELEMENT;
		wrapConstructor(name, (args) => {
			const a = args[0];
			if (a === null || typeof a !== "object") checkBytes(name, toInteger(a) * size);
			else if (!(a instanceof ArrayBuffer) && !(typeof SharedArrayBuffer === "function" && a instanceof SharedArrayBuffer)) {
				const it = a[symIterator];
				const n = it === undefined || it === null || isArray(a) || isView(a) ? lengthOf(a) : 0;
				checkBytes(name, n * size);
			}
			return args;
		});
	}
	if (TypedArrayPrototype !== undefined) {
		for (const key of ownKeys(TypedArrayPrototype)) {
			if (key === "constructor") continue;
			const d = getDesc(TypedArrayPrototype, key);
			if (typeof d.value !== "function") continue;
			if (key === "join") replace(TypedArrayPrototype, key, () => join);
			else if (key === "toLocaleString") replace(TypedArrayPrototype, key, () => toLocaleString);
			else replace(TypedArrayPrototype, key, guardLength);
		}
	}

	// Argument lists built from array-likes: at most MAX_ARGS.
	function checkArgs(what, list) {
		if (list !== null && list !== undefined && lengthOf(ToObject(list)) > MAX_ARGS) throw fail(what, MAX_ARGS, "arguments");
	}
	replace(Function.prototype, "apply", (orig) => ({
		apply(thisArg, args) {
			checkArgs("apply", args);
			return apply(orig, this, arguments);
		}
	}).apply);
	replace(Reflect, "apply", (orig) => ({
		apply(target, thisArg, args) {
			checkArgs("Reflect.apply", args);
			return apply(orig, undefined, arguments);
		}
	}).apply);
	replace(Reflect, "construct", (orig) => ({
		construct(target, args) {
			checkArgs("Reflect.construct", args);
			return apply(orig, undefined, arguments);
		}
	}).construct);

	// Own keys of a long string or array-like: one string per element.
	function guardKeys(name) {
		return (orig) => ({
			m(o) {
				if (o !== null && o !== undefined && (typeof o === "string" || typeof o === "object")) {
					checkElements(name, typeof o === "string" ? o.length : (o instanceof String || isView(o)) ? lengthOf(o) : 0);
				}
				return apply(orig, this, arguments);
			}
		}).m;
	}
	for (const name of ["keys", "values", "entries", "getOwnPropertyNames", "getOwnPropertyDescriptors"]) replace(Object, name, guardKeys("Object." + name));
	replace(Object, "assign", (orig) => ({
		assign(target) {
			for (let i = 1; i < arguments.length; i++) {
				const o = arguments[i];
				if (typeof o === "string") checkElements("Object.assign", o.length);
				else if (o !== null && typeof o === "object" && (o instanceof String || isView(o))) checkElements("Object.assign", lengthOf(o));
			}
			return apply(orig, undefined, arguments);
		}
	}).assign);
	replace(Reflect, "ownKeys", guardKeys("Reflect.ownKeys"));

	// JSON: stringify estimates its output first, walking the value as it
	// would (a replacer function is called for every value, so the
	// watchdog sees that work); parse refuses text nested more than
	// MAX_DEPTH deep, which goja would parse with unbounded recursion.
	function estimate(v, indent, depth, total) {
		if (v !== null && (typeof v === "object" || typeof v === "function")) {
			const toJSON = v.toJSON;
			if (typeof toJSON === "function") v = apply(toJSON, v, [""]);
		}
		if (v === null) return total + 4;
		switch (typeof v) {
			case "string":
				total += v.length + 2;
				checkString("JSON.stringify", total);
				return total;
			case "number": case "bigint":
				return total + 24;
			case "boolean":
				return total + 5;
			case "object":
				break;
			default:
				return total;
		}
		if (depth >= MAX_DEPTH) throw fail("JSON.stringify", MAX_DEPTH, "levels of nesting");
		total += 2;
		if (isArray(v)) {
			const len = lengthOf(v);
			checkElements("JSON.stringify", len);
			for (let i = 0; i < len; i++) {
				total = estimate(v[i], indent, depth + 1, total + 1 + indent * (depth + 1));
				checkString("JSON.stringify", total);
			}
			return total;
		}
		if (v instanceof String) return total + lengthOf(v);
		for (const k of Object.keys(v)) {
			total = estimate(v[k], indent, depth + 1, total + k.length + 4 + indent * (depth + 1));
			checkString("JSON.stringify", total);
		}
		return total;
	}
	replace(JSON, "stringify", (orig) => ({
		stringify(value, replacer, space) {
			if (typeof replacer !== "function") {
				let indent = 0;
				if (typeof space === "number") indent = Math.min(10, Math.max(0, toInteger(space)));
				else if (typeof space === "string") indent = Math.min(10, space.length);
				estimate(value, indent, 0, 0);
			}
			return apply(orig, undefined, arguments);
		}
	}).stringify);
	replace(JSON, "parse", (orig) => ({
		parse(text, reviver) {
			const s = ToString(text);
			if (!checkJSONDepth(s)) throw fail("JSON.parse", MAX_DEPTH, "levels of nesting");
			return apply(orig, undefined, [s, reviver]);
		}
	}).parse);

	// eval and the Function constructors compile source with goja's
	// recursive-descent parser, which deeply nested source sends past the
	// Go stack; conditions do not need them.
	function disabled(what) {
		return function () { throw new EvalError(what + " is disabled in filter conditions"); };
	}
	defineProperty(G, "eval", { value: method(disabled("eval")), writable: true, enumerable: false, configurable: true });
	const intrinsicFunctions = [Function];
	for (const src of ["(function*(){})", "(async function(){})", "(async function*(){})"]) {
		try { apply(arrayPush, intrinsicFunctions, [getProto(Function("return " + src)()).constructor]); } catch (e) { /* not supported */ }
	}
	for (const F of intrinsicFunctions) {
		const W = disabled(F.name || "Function");
		defineProperty(W, "prototype", { value: F.prototype, writable: false, enumerable: false, configurable: false });
		setProto(W, getProto(F));
		defineProperty(F.prototype, "constructor", { value: W, writable: false, enumerable: false, configurable: true });
		if (F === Function) defineProperty(G, "Function", { value: W, writable: true, enumerable: false, configurable: true });
	}

	// Freeze everything reachable: the global object, every built-in and
	// the intrinsics that are reachable only from values (iterator and
	// generator prototypes, %ThrowTypeError%).
	// deepFreeze runs at setup, and on conditions' own functions, whose
	// prototype chain is already frozen: Set and the helpers cannot have
	// been tampered with.
	function deepFreeze(root, all) {
		const seen = new SetCtor();
		const todo = [root];
		let n = 1;
		while (n > 0) {
			const o = todo[--n];
			todo[n] = undefined;
			if (o === null || (typeof o !== "object" && typeof o !== "function") || seen.has(o)) continue;
			seen.add(o);
			if (!all && isFrozen(o)) continue;
			const keys = ownKeys(o);
			for (let i = 0; i < keys.length; i++) {
				const d = getDesc(o, keys[i]);
				if (d === undefined) continue;
				if (d.get !== undefined || d.set !== undefined) {
					todo[n++] = d.get;
					todo[n++] = d.set;
				} else if (d.value !== null && (typeof d.value === "object" || typeof d.value === "function")) {
					todo[n++] = d.value;
				}
			}
			todo[n++] = getProto(o);
			freeze(o);
		}
	}
	const roots = [G,
		getProto([][symIterator]()), getProto(new Map().entries()), getProto(new Set().values()),
		getProto(""[symIterator]()), getProto(/a/[Symbol.matchAll]("")),
		getDesc(function () { "use strict"; return arguments; }(), "callee").get,
	];
	for (const F of intrinsicFunctions) apply(arrayPush, roots, [F, F.prototype]);
	for (const r of roots) deepFreeze(r, true);
	return function (f) { deepFreeze(f, false); return f; };
})
