package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestParseByteSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want byteSize
	}{
		{"0", 0},
		{"67108864", 64 << 20},
		{" 1000 ", 1000},
		{"-1", -1},
		{"+5", 5},
		{"512B", 512},
		{"1KiB", 1 << 10},
		{"64MiB", 64 << 20},
		{"64 MiB", 64 << 20},
		{"64mib", 64 << 20},
		{"500MiB", 500 << 20},
		{"2GiB", 2 << 30},
		{"1TiB", 1 << 40},
		{"1.5GiB", 3 << 29},
		{"0.5KiB", 512},
		{"1kB", 1000},
		{"1KB", 1000},
		{"64MB", 64_000_000},
		{"1.5GB", 1_500_000_000},
		{"1GB", 1_000_000_000},
		{"2TB", 2_000_000_000_000},
		{"8388607TiB", 8388607 << 40},
	} {
		got, err := parseByteSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseByteSize(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{"", "is no size"},
		{"lots", "is no size"},
		{"MiB", "is no size"},
		{"1e6", "is no size"}, // "e" would be read as a unit
		{"0x10", "is no size"},
		{"1.", "is no size"},
		{".5MiB", "is no size"},
		{"1,5MiB", "is no size"},
		{"64M", `unknown unit "M"`},
		{"1G", `unknown unit "G"`},
		{"64Mb", ""}, // any case: megabytes, as no byte size is in bits
		{"1PiB", `unknown unit "PiB"`},
		{"0.3KiB", "is not a whole number of bytes"},
		{"1.5", "is not a whole number of bytes"},
		{"8388608TiB", "is too large"},
		{"99999999999999999999", "is too large"},
	} {
		got, err := parseByteSize(tt.in)
		if tt.want == "" {
			if err != nil {
				t.Errorf("parseByteSize(%q) = %v", tt.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseByteSize(%q) = %d, %v, want an error with %q", tt.in, got, err, tt.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for _, tt := range []struct {
		in   byteSize
		want string
	}{
		{0, "0"},
		{1000, "1000"},
		{1 << 10, "1KiB"},
		{64 << 20, "64MiB"},
		{500 << 20, "500MiB"},
		{3 << 29, "1536MiB"},
		{1 << 40, "1TiB"},
		{-1 << 20, "-1MiB"},
		{64_000_000, "62500KiB"},
	} {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("byteSize(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
	}
}

// FuzzParseByteSize checks that every size parseByteSize reads is written
// by String as a size that it reads back the same.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"0", "67108864", "64MiB", "1.5GB", "0.5KiB", "-3TiB", "1 kb", "8388607TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseByteSize(s)
		if err != nil {
			return
		}
		back, err := parseByteSize(n.String())
		if err != nil || back != n {
			t.Fatalf("parseByteSize(%q) = %d, written %q, read back as %d, %v", s, n, n.String(), back, err)
		}
	})
}

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   any
		want time.Duration
	}{
		{"30s", 30 * time.Second},
		{" 2m ", 2 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"0", 0},
		{0, 0},
		{0.0, 0},
		{uint64(0), 0},
		{"-1s", -time.Second},
		{time.Minute, time.Minute},
	} {
		got, err := parseDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseDuration(%#v) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	// A bare number is not nanoseconds, nor seconds: it is refused, as the
	// flags refuse it.
	for _, tt := range []struct {
		in   any
		want string
	}{
		{"30", `"30" has no unit`},
		{"1.5", `"1.5" has no unit`},
		{30, "30 has no unit"},
		{0.5, "0.5 has no unit"},
		{"soon", `"soon" is no duration`},
		{"", `"" is no duration`},
		{true, "true is no duration"},
		{[]any{"1s"}, "is no duration"},
	} {
		got, err := parseDuration(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseDuration(%#v) = %v, %v, want an error with %q", tt.in, got, err, tt.want)
		}
	}
}

// TestDecodeHook checks the conversions of the values viper holds into the
// types of the settings, and the errors that name the value.
func TestDecodeHook(t *testing.T) {
	type all struct {
		D time.Duration `mapstructure:"d"`
		B byteSize      `mapstructure:"b"`
		L []string      `mapstructure:"l"`
		S string        `mapstructure:"s"`
		I int           `mapstructure:"i"`
		F float64       `mapstructure:"f"`
		T bool          `mapstructure:"t"`
	}
	for _, tt := range []struct {
		key  string
		in   any
		want any
	}{
		{"d", "2m", 2 * time.Minute},
		{"d", 0, time.Duration(0)},
		{"b", "64MiB", byteSize(64 << 20)},
		{"b", 1000, byteSize(1000)},
		{"b", uint64(1000), byteSize(1000)},
		{"b", 1e6, byteSize(1_000_000)},
		{"l", " a.example.com, b.example.com ,", []string{"a.example.com", "b.example.com"}},
		{"l", []string{"a", "b,c"}, []string{"a", "b", "c"}},
		{"l", []any{"a", "b,c"}, []string{"a", "b", "c"}},
		{"l", []string{}, []string{}},
		{"s", "  x  ", "x"},
		{"s", 8080, "8080"},
		{"s", true, "true"},
		{"i", " 42 ", 42},
		{"i", 42, 42},
		{"i", 42.0, 42},
		{"f", "0.5", 0.5},
		{"f", 2, 2.0},
		{"t", "true", true},
		{"t", " false ", false},
		{"t", true, true},
	} {
		s := newTestSettings(t, map[string]any{tt.key: tt.in})
		var got all
		if err := s.v.Unmarshal(&got, decodeOption()); err != nil {
			t.Errorf("decode %s: %#v: %v", tt.key, tt.in, err)
			continue
		}
		v := reflect.ValueOf(got).FieldByNameFunc(func(n string) bool { return strings.ToLower(n) == tt.key }).Interface()
		if !reflect.DeepEqual(v, tt.want) {
			t.Errorf("decode %s: %#v = %#v, want %#v", tt.key, tt.in, v, tt.want)
		}
	}
	for _, tt := range []struct {
		key  string
		in   any
		want string
	}{
		{"d", "30", `"30" has no unit`},
		{"b", "64M", `unknown unit "M"`},
		{"b", 1.5, "1.5 is no number of bytes"},
		{"b", true, "true is no number of bytes"},
		{"l", 3, "3 is no list"},
		{"l", []any{"a", 3}, "3 is no name"},
		{"s", []any{"a"}, "want a string, not a list or map"},
		{"s", map[string]any{"a": 1}, "want a string, not a list or map"},
		{"i", "many", `"many" is not a whole number`},
		{"i", "0x10", `"0x10" is not a whole number`},
		{"i", "99999999999999999999", "is not a whole number"},
		{"i", 1.5, "1.5 is not a whole number"},
		{"f", "fast", `"fast" is not a number`},
		{"t", "perhaps", `"perhaps" is not a boolean`},
	} {
		s := newTestSettings(t, map[string]any{tt.key: tt.in})
		var got all
		err := s.v.Unmarshal(&got, decodeOption())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("decode %s: %#v = %+v, %v; want an error with %q", tt.key, tt.in, got, err, tt.want)
		}
	}
}

// newTestSettings returns settings of no flags holding values, as a
// config file would.
func newTestSettings(t *testing.T, values map[string]any) *settings {
	t.Helper()
	s, err := newSettings("test", pflag.NewFlagSet("test", pflag.ContinueOnError), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.v.MergeConfigMap(values); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLevelHook checks the log levels a setting takes.
func TestLevelHook(t *testing.T) {
	for _, in := range []string{"debug", "INFO", " warn ", "error", "info+2"} {
		if _, err := levelHook(nil, levelType, in); err != nil {
			t.Errorf("levelHook(%q) = %v", in, err)
		}
	}
	for _, in := range []any{"loud", "", 4} {
		if _, err := levelHook(nil, levelType, in); err == nil || !strings.Contains(err.Error(), "(want debug, info, warn or error)") {
			t.Errorf("levelHook(%#v) = %v, want an error naming the levels", in, err)
		}
	}
}

// TestSettingsFlagsOnly checks that the settings of a command without
// variables read no environment, and name the flag in their errors.
func TestSettingsFlagsOnly(t *testing.T) {
	t.Setenv("SUMDB_CONCURRENCY", "7")
	t.Setenv("CONCURRENCY", "7")
	fs := newLoadFlags()
	if err := fs.Parse([]string{"--target", "http://127.0.0.1:8080"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadLoadConfig(fs)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Concurrency == 7 {
		t.Errorf("loadLoadConfig: concurrency %d from the environment, want the flag's default", cfg.Concurrency)
	}
	s, err := newSettings("load", fs, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"target", "concurrency"} {
		if name := s.envVar(k); name != "" {
			t.Errorf("load's --%s has the variable %s, want none", k, name)
		}
	}
}
