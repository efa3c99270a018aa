package filter

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dop251/goja"
	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/file"
	"github.com/dop251/goja/parser"
)

// condition is a compiled JavaScript condition: the source of one function
// expression.
type condition struct {
	src     string
	program *goja.Program
}

// conditionName names condition programs in goja's positions.
const conditionName = "condition"

// compileCondition compiles src, a function expression. It is wrapped in
// parentheses (and a line feed, for a trailing // comment) so that
// `function (v) {...}` is an expression; positions in errors are mapped
// back to src.
func compileCondition(src string) (*condition, error) {
	wrapped := "(" + src + "\n)"
	prg, err := parser.ParseFile(nil, conditionName, wrapped, 0, parser.WithDisableSourceMaps)
	if err != nil {
		// An unbalanced ")" in src closes the wrapping's "(", and the
		// error is then found at the wrapping's ")". The assignment
		// x=src has no closing part: its first error is where src went
		// wrong.
		for _, try := range []struct{ prefix, text string }{{"x=", "x=" + src}, {"(", wrapped}} {
			_, err := parser.ParseFile(nil, conditionName, try.text, 0, parser.WithDisableSourceMaps)
			var list parser.ErrorList
			if errors.As(err, &list) && len(list) > 0 {
				return nil, syntaxError(src, len(try.prefix), list[0].Position, list[0].Message)
			}
		}
		return nil, &conditionError{msg: err.Error()}
	}
	if len(prg.Body) != 1 {
		return nil, &conditionError{msg: "condition must be a function"}
	}
	stmt, ok := prg.Body[0].(*ast.ExpressionStatement)
	if !ok {
		return nil, &conditionError{msg: "condition must be a function"}
	}
	switch fn := stmt.Expression.(type) {
	case *ast.FunctionLiteral:
		if fn.Async || fn.Generator {
			return nil, &conditionError{msg: "condition must be a plain function: an async function or a generator returns an object, which is always true"}
		}
	case *ast.ArrowFunctionLiteral:
		if fn.Async {
			return nil, &conditionError{msg: "condition must be a plain function: an async function returns a promise, which is always true"}
		}
	default:
		// Anything else, a call in particular, would run when the
		// function is made rather than when it is called.
		return nil, &conditionError{msg: "condition must be a function, such as (value) => value > 100"}
	}
	program, err := goja.CompileAST(prg, false)
	if err != nil {
		var ce *goja.CompilerSyntaxError
		if errors.As(err, &ce) && ce.File != nil {
			return nil, syntaxError(src, 1, ce.File.Position(ce.Offset), ce.Message)
		}
		var re *goja.CompilerReferenceError
		if errors.As(err, &re) && re.File != nil {
			return nil, &conditionError{msg: "ReferenceError: " + re.Message, pos: mapPosition(src, 1, re.File.Position(re.Offset))}
		}
		return nil, &conditionError{msg: err.Error()}
	}
	return &condition{src: src, program: program}, nil
}

// conditionError is why a condition does not compile.
type conditionError struct {
	pos position
	msg string
}

type position struct{ line, col int } // from 1, in characters; 0 when unknown

func (e *conditionError) Error() string {
	if e.pos.line == 0 {
		return e.msg
	}
	return fmt.Sprintf("%s at line %d, column %d", e.msg, e.pos.line, e.pos.col)
}

// syntaxError describes a syntax error at p in src after a prefix of that
// many bytes on its first line.
func syntaxError(src string, prefix int, p file.Position, msg string) error {
	pos := mapPosition(src, prefix, p)
	if pos.line == 0 {
		// Past src, in the wrapping: src ended too soon.
		pos, msg = endOf(src), "Unexpected end of input"
	}
	return &conditionError{msg: fmt.Sprintf("SyntaxError at line %d, column %d: %s", pos.line, pos.col, msg)}
}

// mapPosition maps a position in src after a prefix of that many bytes on
// its first line (line and byte column from 1) to src, in characters; zero
// when it lies past src.
func mapPosition(src string, prefix int, p file.Position) position {
	lines := strings.Split(src, "\n")
	if p.Line < 1 || p.Line > len(lines) {
		return position{}
	}
	line := lines[p.Line-1]
	b := p.Column - 1 // bytes before the position
	if p.Line == 1 {
		b -= prefix
	}
	if b > len(line) {
		return position{}
	}
	b = max(b, 0)
	return position{line: p.Line, col: utf8.RuneCountInString(line[:b]) + 1}
}

func endOf(src string) position {
	lines := strings.Split(src, "\n")
	last := lines[len(lines)-1]
	return position{line: len(lines), col: utf8.RuneCountInString(last) + 1}
}

// exceptionMessage describes a value a condition threw, with where it
// was thrown in the condition's source when goja knows. Describing an
// object calls its toString, which may throw or be interrupted; ok is then
// false, and the runtime must not be reused.
func exceptionMessage(src string, ex *goja.Exception) (msg string, ok bool) {
	msg, ok = "exception", true
	if v := ex.Value(); v != nil {
		func() {
			defer func() {
				if recover() != nil {
					msg, ok = "a value whose toString failed", false
				}
			}()
			msg = v.String()
		}()
	}
	for _, f := range ex.Stack() {
		if f.SrcName() != conditionName {
			continue
		}
		if pos := mapPosition(src, 1, f.Position()); pos.line > 0 {
			return fmt.Sprintf("%s (line %d, column %d)", msg, pos.line, pos.col), ok
		}
		break
	}
	return msg, ok
}
