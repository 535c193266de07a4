package main

// Strict YAML decoding.
//
// The file is parsed into a yaml.Node tree and then walked here, by
// reflection over the config structs' `yaml` tags, instead of being handed
// to yaml's own decoder: Decoder.KnownFields is not propagated into
// Node.Decode or custom unmarshalers, and yaml's errors name a line but not
// the field. The walk rejects unknown and duplicate keys at every level and
// values of the wrong kind, and every error carries the file, the line and
// the dotted field path ("backends.api.servers[1]"). It records the line of
// every field it sees so that the cross-reference checks in validate.go can
// point at the line too.
//
// Scalar types with their own syntax (Duration, Size) implement
// yaml.Unmarshaler; they decode only a scalar and never a struct, so the
// strictness is not lost there.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ConfigError is a configuration problem, located in the config file.
type ConfigError struct {
	File  string // the file as named by the user; "" for flag-built configs
	Line  int    // 1-based; 0 if unknown
	Field string // dotted path such as "backends.api.servers[1]"; "" for the whole file
	Msg   string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// source remembers where a Config came from, for error messages.
type source struct {
	file  string
	lines map[string]int // field path → line; "" is the document
}

// errorf returns a ConfigError for field, at the line recorded for field or
// for its nearest recorded parent.
func (s *source) errorf(field, format string, args ...any) error {
	e := &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
	if s != nil {
		e.File = s.file
		e.Line = s.line(field)
	}
	return e
}

func (s *source) line(field string) int {
	if s == nil {
		return 0
	}
	for p := field; ; p = parentPath(p) {
		if l, ok := s.lines[p]; ok {
			return l
		}
		if p == "" {
			return 0
		}
	}
}

// parentPath strips the last element of a field path:
// "a.b[2]" → "a.b" → "a" → "".
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// parseConfig decodes and validates a config file. name is used only in
// error messages.
func parseConfig(name string, data []byte) (cfg *Config, err error) {
	src := &source{file: name, lines: map[string]int{}}
	root, err := parseYAML(src, data)
	if err != nil {
		return nil, err
	}
	cfg = &Config{}
	src.lines[""] = root.Line
	d := &decoder{src: src}
	if err := d.value("", root, reflect.ValueOf(cfg).Elem()); err != nil {
		return nil, err
	}
	cfg.src = src
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// syntaxLine matches the location yaml puts in its syntax errors.
var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): `)

// parseYAML parses exactly one YAML document and returns its top node.
func parseYAML(src *source, data []byte) (root *yaml.Node, err error) {
	// The yaml parser panics ("internal error") on a few malformed inputs
	// instead of returning an error; a config loader must not crash on them.
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, &ConfigError{File: src.file, Line: 1, Msg: fmt.Sprintf("invalid YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ConfigError{File: src.file, Line: 1, Msg: "empty configuration"}
		}
		return nil, yamlError(src, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &ConfigError{File: src.file, Line: extra.Line, Msg: "more than one YAML document; expected one"}
	case !errors.Is(err, io.EOF):
		return nil, yamlError(src, err)
	}
	root = &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, &ConfigError{File: src.file, Line: max(root.Line, 1), Msg: "empty configuration"}
	}
	return root, nil
}

// yamlError turns a yaml syntax error into a ConfigError with its line.
func yamlError(src *source, err error) error {
	msg := err.Error()
	line := 1
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		// yaml reports scanner errors with 1-based lines but parser errors
		// (these problems, from parserc.go) with 0-based ones.
		for _, p := range []string{"did not find expected", "found undefined tag handle", "found duplicate %", "found incompatible YAML document"} {
			if strings.HasPrefix(msg, p) {
				line++
				break
			}
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &ConfigError{File: src.file, Line: line, Msg: "YAML syntax error: " + msg}
}

type decoder struct {
	src *source
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// value decodes n into v, which must be settable. path names v.
func (d *decoder) value(path string, n *yaml.Node, v reflect.Value) error {
	// An alias stands for its anchor's node. An alias never carries an
	// anchor itself, so one step resolves it; the loop only guards.
	for i := 0; n.Kind == yaml.AliasNode; i++ {
		if n.Alias == nil || i > 8 {
			return d.errorAt(n, path, "unresolvable alias")
		}
		n = n.Alias
	}
	null := n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
	if null {
		// An empty value ("field:" or "field: ~") means the zero value,
		// which every field documents as its default.
		v.SetZero()
		return nil
	}
	if v.Addr().Type().Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			return d.errorAt(n, path, "%v", err)
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := d.value(path, n, p.Elem()); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Struct:
		return d.structValue(path, n, v)
	case reflect.Map:
		return d.mapValue(path, n, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return d.errorAt(n, path, "expected a list, got %s", describe(n))
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.src.lines[p] = item.Line
			if err := d.value(p, item, s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			return d.errorAt(n, path, "expected a string, got %s%s", describe(n), quoteHint(n))
		}
		v.SetString(n.Value)
		return nil
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			return d.errorAt(n, path, "expected true or false, got %s", describe(n))
		}
		v.SetBool(b)
		return nil
	case reflect.Int, reflect.Int64, reflect.Uint32:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			return d.errorAt(n, path, "expected an integer, got %s", describe(n))
		}
		if i < 0 {
			return d.errorAt(n, path, "must not be negative, got %d", i)
		}
		if v.CanInt() {
			if v.OverflowInt(i) {
				return d.errorAt(n, path, "%d is out of range", i)
			}
			v.SetInt(i)
		} else {
			if v.OverflowUint(uint64(i)) {
				return d.errorAt(n, path, "%d is out of range", i)
			}
			v.SetUint(uint64(i))
		}
		return nil
	}
	// Only reachable if a config struct grows a field of a new kind.
	panic(fmt.Sprintf("config decoder: unsupported field type %s at %s", v.Type(), path))
}

// structValue decodes a mapping into a struct by the fields' yaml tags.
func (d *decoder) structValue(path string, n *yaml.Node, v reflect.Value) error {
	if n.Kind != yaml.MappingNode {
		return d.errorAt(n, path, "expected a mapping, got %s", describe(n))
	}
	t := v.Type()
	fields := map[string]int{}
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			fields[name] = i
		}
	}
	return d.pairs(path, n, func(key string, keyNode, val *yaml.Node) error {
		p := joinPath(path, key)
		i, ok := fields[key]
		if !ok {
			return d.errorAt(keyNode, p, "unknown field")
		}
		return d.value(p, val, v.Field(i))
	})
}

// mapValue decodes a mapping with string keys into a map[string]T.
func (d *decoder) mapValue(path string, n *yaml.Node, v reflect.Value) error {
	if n.Kind != yaml.MappingNode {
		return d.errorAt(n, path, "expected a mapping, got %s", describe(n))
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	err := d.pairs(path, n, func(key string, keyNode, val *yaml.Node) error {
		p := joinPath(path, key)
		if key == "" {
			return d.errorAt(keyNode, p, "empty name")
		}
		e := reflect.New(v.Type().Elem()).Elem()
		if err := d.value(p, val, e); err != nil {
			return err
		}
		m.SetMapIndex(reflect.ValueOf(key), e)
		return nil
	})
	if err != nil {
		return err
	}
	v.Set(m)
	return nil
}

// pairs calls f for every key of a mapping in file order, after checking
// that the key is a string and not a repeat, and records the key's line.
func (d *decoder) pairs(path string, n *yaml.Node, f func(key string, keyNode, val *yaml.Node) error) error {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			return d.errorAt(k, joinPath(path, "<<"), "merge keys are not supported")
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			return d.errorAt(k, path, "keys must be strings, got %s%s", describe(k), quoteHint(k))
		}
		p := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			return d.errorAt(k, p, "duplicate key (first at line %d)", first)
		}
		seen[k.Value] = k.Line
		d.src.lines[p] = k.Line
		if err := f(k.Value, k, val); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) errorAt(n *yaml.Node, path, format string, args ...any) error {
	return &ConfigError{File: d.src.file, Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe names a node's kind for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("string %q", v)
		case "!!int":
			return "integer " + v
		case "!!float":
			return "number " + v
		case "!!bool":
			return "boolean " + v
		case "!!null":
			return "null"
		default:
			return fmt.Sprintf("%s %q", n.ShortTag(), v)
		}
	}
	return "an unexpected YAML node"
}

// quoteHint suggests quoting for plain scalars YAML read as a non-string.
func quoteHint(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
		return " (quote it to make it a string)"
	}
	return ""
}
