package target

import (
	"net/url"
	"reflect"
	"testing"
)

// TestParseAsURL: Parse gives what url.ParseRequestURI gives, fast path or
// not.
func TestParseAsURL(t *testing.T) {
	for _, s := range []string{
		"/", "/a/b", "/a?b=c", "/a?", "/a??b", "/a?b?c", "/%41", "/a%2Fb", "/a b", "/a#f", "*", "/é", "/a;b=c", "//x/y", "/a?b=%zz",
	} {
		var got url.URL
		gerr := Parse(s, &got)
		want, werr := url.ParseRequestURI(s)
		if (gerr == nil) != (werr == nil) {
			t.Errorf("%q: error %v, url.ParseRequestURI %v", s, gerr, werr)
			continue
		}
		if werr == nil && !reflect.DeepEqual(got, *want) {
			t.Errorf("%q: %#v, want %#v", s, got, *want)
		}
	}
}

// FuzzParse: on any input, Parse agrees with url.ParseRequestURI.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"/", "/a?b", "/%41?x=1", "*", "/a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got url.URL
		gerr := Parse(s, &got)
		want, werr := url.ParseRequestURI(s)
		if (gerr == nil) != (werr == nil) || werr == nil && !reflect.DeepEqual(got, *want) {
			t.Fatalf("%q: %#v, %v; url.ParseRequestURI %#v, %v", s, got, gerr, want, werr)
		}
	})
}
