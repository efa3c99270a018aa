package dispatch

// The wire formats of job runs: the products that come in (NDJSON or a JSON
// array, each keyed by a field) and the payloads of reference document 2
// that go out.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/change"
)

// Job payload event names (reference document 2).
const (
	jobAdded   = "ADDED"
	jobUpdated = "UPDATED"
	jobRemoved = "REMOVED"
)

// jobEventName is the delivery event name of job-run deliveries. A job
// delivery belongs to a run, not to one entity event; its EventID is the
// run's ID.
const jobEventName = "job.run"

// jobChunk builds one format "job" payload of reference document 2 by hand:
//
//	{"timestamp":"2024-07-31T12:34:56Z","jobID":"644","products":[
//	  {"event":"UPDATED","productData":{...},"changedFields":[{"name":"price","from":1,"to":2}]},
//	  ...]}
//
// productData is the product's JSON as posted (for REMOVED, as stored), so
// the receiver gets the document the PIM produced, byte for byte. Building
// the body while products arrive keeps one chunk's products in memory and
// never more.
type jobChunk struct {
	head []byte // everything up to and including `"products":[`
	buf  []byte
	n    int // products in buf
}

// newJobChunk starts the chunks of one webhook for a run of jobID at ts.
func newJobChunk(ts time.Time, jobID string) *jobChunk {
	head := append([]byte(`{"timestamp":`), '"')
	head = ts.UTC().AppendFormat(head, time.RFC3339)
	head = append(head, `","jobID":`...)
	head = change.AppendString(head, jobID)
	head = append(head, `,"products":[`...)
	return &jobChunk{head: head}
}

// add appends one product. changedFields, only for UPDATED, lists changes:
// the changes the webhook is told about.
func (c *jobChunk) add(event string, data []byte, changes []pimhook.FieldChange) {
	if c.n == 0 {
		c.buf = append(c.buf[:0], c.head...)
	} else {
		c.buf = append(c.buf, ',')
	}
	c.n++
	c.buf = append(c.buf, `{"event":"`...)
	c.buf = append(c.buf, event...)
	c.buf = append(c.buf, `","productData":`...)
	c.buf = append(c.buf, data...)
	if event == jobUpdated {
		c.buf = append(c.buf, `,"changedFields":[`...)
		for i, ch := range changes {
			if i > 0 {
				c.buf = append(c.buf, ',')
			}
			c.buf = append(c.buf, `{"name":`...)
			c.buf = change.AppendString(c.buf, ch.Name)
			c.buf = append(c.buf, `,"from":`...)
			c.buf = appendRaw(c.buf, ch.From)
			c.buf = append(c.buf, `,"to":`...)
			c.buf = appendRaw(c.buf, ch.To)
			c.buf = append(c.buf, '}')
		}
		c.buf = append(c.buf, ']')
	}
	c.buf = append(c.buf, '}')
}

// take closes the payload and returns it, a fresh slice the caller owns, and
// empties the chunk.
func (c *jobChunk) take() []byte {
	c.buf = append(c.buf, "]}"...)
	out := make([]byte, len(c.buf))
	copy(out, c.buf)
	c.buf, c.n = c.buf[:0], 0
	return out
}

// appendRaw appends a JSON value, or null for an empty one (a field that
// appeared or disappeared).
func appendRaw(dst, v []byte) []byte {
	if len(v) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, v...)
}

// productSource reads the products of a run one at a time.
type productSource interface {
	// next returns the next product and its line (NDJSON) or element
	// (array) number, 1-based, or io.EOF after the last. The bytes are
	// valid until the next call.
	next() (data []byte, line int, err error)
	// where names a line or element for a message: "line 12".
	where(line int) string
}

// ndjsonSource reads NDJSON: one product per line, blank lines skipped.
type ndjsonSource struct {
	r    *bufio.Reader
	line int
	long []byte // a line longer than the reader's buffer, assembled
}

func newNDJSONSource(body io.Reader) *ndjsonSource {
	return &ndjsonSource{r: bufio.NewReaderSize(body, 256<<10)}
}

func (s *ndjsonSource) where(line int) string { return "line " + strconv.Itoa(line) }

func (s *ndjsonSource) next() ([]byte, int, error) {
	for {
		b, err := s.readLine()
		if err != nil {
			return nil, s.line, err
		}
		if b == nil {
			return nil, s.line, io.EOF
		}
		if b = bytes.TrimSpace(b); len(b) > 0 {
			return b, s.line, nil
		}
	}
}

// readLine returns the next line without its newline, or nil at the end of
// the input.
func (s *ndjsonSource) readLine() ([]byte, error) {
	b, err := s.r.ReadSlice('\n')
	if err == nil || (err == io.EOF && len(b) > 0) {
		s.line++
		return b, nil
	}
	if err == io.EOF {
		return nil, nil
	}
	s.line++
	if err != bufio.ErrBufferFull {
		return nil, readError(s.line, s.where(s.line), err)
	}
	s.long = append(s.long[:0], b...)
	for {
		b, err = s.r.ReadSlice('\n')
		if len(s.long)+len(b) > MaxJobProductBytes {
			return nil, invalidRun(s.line, s.where(s.line), "a line is longer than %d bytes", MaxJobProductBytes)
		}
		s.long = append(s.long, b...)
		switch err {
		case nil, io.EOF:
			return s.long, nil
		case bufio.ErrBufferFull:
		default:
			return nil, readError(s.line, s.where(s.line), err)
		}
	}
}

// readError fails a run whose body could not be read: the connection
// dropped, the body was cut short or exceeded its limit. The cause stays in
// the chain for the caller to inspect.
func readError(line int, where string, err error) error {
	return fmt.Errorf("%w: %w", invalidRun(line, "", "the run could not be read at %s: %v", where, err), err)
}

// arraySource reads a JSON array of products.
type arraySource struct {
	lim   *elementLimit
	dec   *json.Decoder
	n     int
	begun bool
	raw   json.RawMessage
}

func newArraySource(body io.Reader) *arraySource {
	lim := &elementLimit{r: body}
	return &arraySource{lim: lim, dec: json.NewDecoder(lim)}
}

func (s *arraySource) where(n int) string { return "element " + strconv.Itoa(n) }

func (s *arraySource) next() ([]byte, int, error) {
	s.lim.reset()
	if !s.begun {
		s.begun = true
		tok, err := s.dec.Token()
		if err == io.EOF {
			return nil, 0, invalidRun(0, "", "the body is empty; a JSON array of products is required")
		}
		if err != nil {
			return nil, 0, s.decodeError(err)
		}
		if tok != json.Delim('[') {
			return nil, 0, invalidRun(0, "", "the body must be a JSON array of products")
		}
	}
	if !s.dec.More() {
		if _, err := s.dec.Token(); err != nil {
			return nil, s.n, s.decodeError(err)
		}
		_, err := s.dec.Token()
		if err == io.EOF {
			return nil, s.n, io.EOF
		}
		if _, ok := errors.AsType[*json.SyntaxError](err); err != nil && !ok {
			return nil, s.n, s.decodeError(err)
		}
		return nil, s.n, invalidRun(s.n, "", "unexpected data after the array of products")
	}
	s.n++
	s.raw = s.raw[:0]
	if err := s.dec.Decode(&s.raw); err != nil {
		return nil, s.n, s.decodeError(err)
	}
	if len(s.raw) > MaxJobProductBytes {
		return nil, s.n, s.decodeError(errElementTooLarge)
	}
	return s.raw, s.n, nil
}

// decodeError tells a body that is not valid JSON from one that could not
// be read.
func (s *arraySource) decodeError(err error) error {
	where := s.where(s.n)
	if s.n == 0 {
		where = "the start of the body"
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return invalidRun(s.n, where, "malformed JSON: %s", strings.TrimPrefix(se.Error(), "json: "))
	}
	switch {
	case errors.Is(err, errElementTooLarge):
		return invalidRun(s.n, where, "an element is larger than %d bytes", MaxJobProductBytes)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return invalidRun(s.n, where, "the body ends before the array is closed")
	}
	return readError(s.n, where, err)
}

var errElementTooLarge = errors.New("array element too large")

// elementLimit bounds how much the JSON decoder reads for one element, so
// that one huge element cannot take all memory.
type elementLimit struct {
	r    io.Reader
	left int64
}

func (l *elementLimit) reset() { l.left = MaxJobProductBytes + 64<<10 }

func (l *elementLimit) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errElementTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// productKey returns the key of a product: the value of the member whose
// quoted name is qname in canon, a canonical JSON object. A string key is
// taken as it decodes; a number must be an integer and is taken in its
// canonical decimal form, so 42, 42.0 and 4.2e1 are the same key.
func productKey(canon, qname []byte) (string, error) {
	name := qname[1 : len(qname)-1]
	v, ok := memberValue(canon, qname)
	if !ok {
		return "", fmt.Errorf("the product has no %q field", name)
	}
	var key string
	switch c := v[0]; {
	case c == '"':
		if bytes.IndexByte(v, '\\') < 0 {
			key = string(v[1 : len(v)-1])
		} else if err := json.Unmarshal(v, &key); err != nil {
			return "", fmt.Errorf("the product's %q field: %w", name, err)
		}
	case c == '-' || c >= '0' && c <= '9':
		if bytes.ContainsAny(v, ".eE") {
			return "", fmt.Errorf("the product's %q field must be a string or an integer, got %s", name, v)
		}
		key = string(v)
	default:
		return "", fmt.Errorf("the product's %q field must be a string or an integer, got %s", name, v)
	}
	if key == "" {
		return "", fmt.Errorf("the product's %q field is empty", name)
	}
	if len(key) > MaxJobKeyLength || !pimhook.Printable(key) {
		return "", fmt.Errorf("the product's %q field must be at most %d printable characters", name, MaxJobKeyLength)
	}
	return key, nil
}

// memberValue returns the value of the top-level member whose quoted name
// is qname in obj, a canonical (so valid and compact) JSON object.
func memberValue(obj, qname []byte) ([]byte, bool) {
	i := 1
	for i < len(obj) && obj[i] != '}' {
		end := stringEnd(obj, i)
		match := bytes.Equal(obj[i:end], qname)
		i = end + 1 // the colon
		vend := valueEnd(obj, i)
		if match {
			return obj[i:vend], true
		}
		i = vend
		if i < len(obj) && obj[i] == ',' {
			i++
		}
	}
	return nil, false
}

// stringEnd returns the index after the string starting at s[i]: after
// the first quote that an even number of backslashes precede.
func stringEnd(s []byte, i int) int {
	for i++; ; {
		j := bytes.IndexByte(s[i:], '"')
		if j < 0 {
			return len(s)
		}
		i += j
		k := i
		for k > 0 && s[k-1] == '\\' {
			k--
		}
		i++
		if (i-1-k)%2 == 0 {
			return i
		}
	}
}

// valueEnd returns the index after the value starting at s[i].
func valueEnd(s []byte, i int) int {
	depth := 0
	for i < len(s) {
		switch s[i] {
		case '"':
			i = stringEnd(s, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return i
}
