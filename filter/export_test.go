package filter

import "github.com/dop251/goja"

// SetOnCall makes e call f before each condition, with the condition's
// source and argument; f returns the argument to use.
func (e *Engine) SetOnCall(f func(src string, vm *goja.Runtime, arg goja.Value) goja.Value) {
	e.onCall = f
}
