package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/sumdb/sumdb/internal/loadgen"
)

// A settings reads the settings of one command through one viper: the
// command's parsed flags, the environment variables it reads and, for
// serve, a YAML config file. Viper's order decides: a flag set on the
// command line wins over the environment, which wins over the config
// file, which wins over the flag's default. The command's settings struct
// names each setting by its mapstructure tag, the flag's name.
type settings struct {
	cmd       string // the command, for messages
	fs        *pflag.FlagSet
	v         *viper.Viper
	envPrefix string   // variables are <envPrefix>_<KEY>; "" for none
	envKeys   []string // the settings that have a variable; nil for all of them
	file      string   // the config file read, if any
}

// newSettings returns the settings of the command cmd: its parsed flags fs,
// and the variables <envPrefix>_<KEY> (upper case, dashes as underscores)
// of the settings envKeys, or of every setting if envKeys is nil. Viper
// ignores empty variables.
func newSettings(cmd string, fs *pflag.FlagSet, envPrefix string, envKeys []string) (*settings, error) {
	v := viper.New()
	if err := v.BindPFlags(fs); err != nil {
		return nil, fmt.Errorf("%s: bind flags: %w", cmd, err)
	}
	if envPrefix != "" {
		v.SetEnvPrefix(envPrefix)
		v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
		if envKeys == nil {
			v.AutomaticEnv()
		}
		for _, k := range envKeys {
			if err := v.BindEnv(k); err != nil {
				return nil, fmt.Errorf("%s: bind environment: %w", cmd, err)
			}
		}
	}
	return &settings{cmd: cmd, fs: fs, v: v, envPrefix: envPrefix, envKeys: envKeys}, nil
}

// envVar returns the environment variable of the setting key, or "" if it
// has none: the name viper reads.
func (s *settings) envVar(key string) string {
	if s.envPrefix == "" || s.envKeys != nil && !slices.Contains(s.envKeys, key) {
		return ""
	}
	return s.envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// readFile reads the YAML config file, whose keys must be among keys: a
// misspelt key is an error rather than a setting silently ignored.
func (s *settings) readFile(file string, keys []string) error {
	s.v.SetConfigFile(file)
	s.v.SetConfigType("yaml")
	if err := s.v.ReadInConfig(); err != nil {
		var perr *os.PathError
		if errors.As(err, &perr) {
			return fmt.Errorf("read config file: %w", perr)
		}
		return fmt.Errorf("read config file %s: %w (want YAML such as \"listen: 127.0.0.1:8080\")", file, err)
	}
	s.file = file
	// Only the file can bring keys that are no flag: viper knows no other
	// variables than those of the flags.
	for _, k := range s.v.AllKeys() {
		if s.v.InConfig(k) && !slices.Contains(keys, k) {
			return fmt.Errorf("config file %s: unknown key %q (known keys: %s)", file, k, strings.Join(keys, ", "))
		}
	}
	return nil
}

// A rule says what a valid value of a setting is: want describes one, for
// the message about a value that cannot be decoded, or that ok refuses
// once decoded into *val. A rule without ok only describes.
type rule struct {
	key  string
	want string
	val  any // a pointer to the setting's field
	ok   func() bool
}

// decode fills dst, a pointer to the command's settings struct, with
// UnmarshalExact: every flag must have its field. A value that cannot be
// decoded is reported as its setting's, with what rules want of it.
func (s *settings) decode(dst any, rules []rule) error {
	err := s.v.UnmarshalExact(dst, decodeOption())
	if err == nil {
		return nil
	}
	var derr *mapstructure.DecodeError
	if !errors.As(err, &derr) || s.fs.Lookup(derr.Name()) == nil {
		return fmt.Errorf("%s: decode settings: %w", s.cmd, err)
	}
	key, cause := derr.Name(), derr.Unwrap()
	for _, r := range rules {
		if r.key == key {
			return s.invalid(key, "%s (%v)", r.want, cause)
		}
	}
	return s.invalid(key, "%v", cause)
}

// check returns the error for the first setting that rules refuse.
func (s *settings) check(rules []rule) error {
	for _, r := range rules {
		if r.ok != nil && !r.ok() {
			return s.invalid(r.key, "%s, not %v", r.want, reflect.ValueOf(r.val).Elem().Interface())
		}
	}
	return nil
}

// origin names where the value of the setting key came from, as the user
// would look for it, and reports whether the user set it at all. It looks
// in viper's order.
func (s *settings) origin(key string) (where string, set bool) {
	if f := s.fs.Lookup(key); f != nil && f.Changed {
		return "--" + key, true
	}
	if name := s.envVar(key); name != "" {
		if val, ok := os.LookupEnv(name); ok && val != "" {
			return name, true
		}
	}
	if s.file != "" && s.v.InConfig(key) {
		return fmt.Sprintf("%s in %s", key, s.file), true
	}
	return "the default --" + key, false
}

// invalid returns the error for an invalid value of the setting key,
// naming where the value came from.
func (s *settings) invalid(key, format string, args ...any) error {
	where, _ := s.origin(key)
	return s.fail(key, fmt.Errorf("invalid %s: %s", where, fmt.Sprintf(format, args...)))
}

// fail returns err, about the setting key, as the command reports it. The
// settings of serve also come from a config file and the environment of a
// deployment, where a mistake is no usage error (exit status 2) as one on
// its command line is; the other commands' variables are set beside the
// command line they complete, and their messages name the command.
func (s *settings) fail(key string, err error) error {
	if s.cmd != "serve" {
		return &usageError{fmt.Errorf("%s: %w", s.cmd, err)}
	}
	if f := s.fs.Lookup(key); f != nil && f.Changed {
		return &usageError{err}
	}
	return err
}

// decodeOption returns the option of viper's Unmarshal that decodes the
// settings of every command with decodeHook.
func decodeOption() viper.DecoderConfigOption { return viper.DecodeHook(decodeHook()) }

// decodeHook returns the decode hook of every command's settings. Viper
// holds strings from flags and the environment, and strings, numbers,
// booleans and lists from a YAML file; the hooks turn each into the type
// of its setting, with errors that say what is wrong with the value.
func decodeHook() mapstructure.DecodeHookFunc {
	return mapstructure.ComposeDecodeHookFunc(
		durationHook,
		byteSizeHook,
		levelHook,
		parseHook(loadgen.ParseMix),
		listHook,
		stringHook,
		numberHook,
	)
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[byteSize]()
	levelType    = reflect.TypeFor[slog.Level]()
	listType     = reflect.TypeFor[[]string]()
)

// durationHook decodes a duration setting: see parseDuration.
func durationHook(_, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	return parseDuration(data)
}

// parseDuration returns the duration of a setting's value: a string with a
// unit, as time.ParseDuration and so the flags take it ("30s", "2m"). A
// number without a unit is refused, unless it is 0, from every source
// alike: time.ParseDuration refuses it, cast would take it as nanoseconds,
// and a reader as seconds, and a setting must mean the same wherever it is
// given.
func parseDuration(data any) (time.Duration, error) {
	switch v := data.(type) {
	case time.Duration:
		return v, nil
	case string:
		s := strings.TrimSpace(v)
		d, err := time.ParseDuration(s)
		if err != nil {
			if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
				return 0, fmt.Errorf("%q has no unit, such as s or m", s)
			}
			return 0, fmt.Errorf("%q is no duration", s)
		}
		return d, nil
	}
	switch n := reflect.ValueOf(data); n.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if n.IsZero() {
			return 0, nil
		}
		return 0, fmt.Errorf("%v has no unit, such as s or m", data)
	}
	return 0, fmt.Errorf("%v is no duration", data)
}

// A byteSize is a number of bytes, given as a setting by a plain number of
// bytes or by a number with a unit (see parseByteSize). As a flag it is a
// pflag.Value.
type byteSize int64

// Units of byte sizes, by their names in lower case. Both the binary units
// (KiB, MiB, GiB, TiB: powers of 1024, which the defaults are round in)
// and the decimal ones (kB, MB, GB, TB: powers of 1000, as IEC 80000-13 and
// the SI define them) are taken at their standard value. Bare letters
// (64M, 1G) are not units: tools disagree on whether they mean powers of
// 1000 or of 1024, and the size of a cache should not depend on which one
// its operator had in mind.
var byteUnits = map[string]int64{
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// parseByteSize parses a byte size: a whole number of bytes ("67108864"),
// or a number with a unit of byteUnits, in any case, perhaps with a space
// before it ("64MiB", "1.5 GB"), that comes to a whole number of bytes.
// go-humanize's ParseBytes, the library at hand, reads a bare "64M" as
// 64 MB and computes in floating point, truncating what is not a whole
// byte: a setting must not silently mean another size than was written.
func parseByteSize(s string) (byteSize, error) {
	s = strings.TrimSpace(s)
	i := len(s)
	for i > 0 && ('a' <= s[i-1] && s[i-1] <= 'z' || 'A' <= s[i-1] && s[i-1] <= 'Z') {
		i--
	}
	num, unit := strings.TrimSpace(s[:i]), s[i:]
	if !isDecimal(num) {
		return 0, fmt.Errorf("%q is no size: give a number of bytes, or a number with a unit such as 64MiB", s)
	}
	mult := int64(1)
	if unit != "" {
		m, ok := byteUnits[strings.ToLower(unit)]
		if !ok {
			return 0, fmt.Errorf("%q has an unknown unit %q: give bytes, or KiB, MiB, GiB, TiB (powers of 1024) or kB, MB, GB, TB (powers of 1000)", s, unit)
		}
		mult = m
	}
	r, _ := new(big.Rat).SetString(num)
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	}
	if n := r.Num(); n.IsInt64() {
		return byteSize(n.Int64()), nil
	}
	return 0, fmt.Errorf("%q is too large", s)
}

// isDecimal reports whether s is a decimal number: an optional sign,
// digits, and perhaps a fraction.
func isDecimal(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	whole, frac, dot := strings.Cut(s, ".")
	digits := func(d string) bool {
		for _, c := range d {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	return whole != "" && digits(whole) && digits(frac) && (!dot || frac != "")
}

// String returns the size in the largest binary unit it is a whole number
// of, or in bytes: the defaults, powers of 1024, read as 64MiB.
func (b byteSize) String() string {
	if b != 0 {
		for _, u := range []string{"TiB", "GiB", "MiB", "KiB"} {
			if m := byteSize(byteUnits[strings.ToLower(u)]); b%m == 0 {
				return strconv.FormatInt(int64(b/m), 10) + u
			}
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// Set parses a flag's value.
func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = n
	return nil
}

// Type names the flag's value in --help.
func (b *byteSize) Type() string { return "size" }

// byteSizeHook decodes a byte size setting: a string (see parseByteSize),
// or a number of bytes from YAML.
func byteSizeHook(_, to reflect.Type, data any) (any, error) {
	if to != byteSizeType {
		return data, nil
	}
	if s, ok := data.(string); ok {
		return parseByteSize(s)
	}
	switch n := reflect.ValueOf(data); n.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return byteSize(n.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Uint() <= math.MaxInt64 {
			return byteSize(n.Uint()), nil
		}
	case reflect.Float32, reflect.Float64:
		if f := n.Float(); f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return byteSize(f), nil
		}
	}
	return nil, fmt.Errorf("%v is no number of bytes", data)
}

// levelHook decodes a log level by its name, as slog writes it.
func levelHook(_, to reflect.Type, data any) (any, error) {
	if to != levelType {
		return data, nil
	}
	s, ok := data.(string)
	var l slog.Level
	if !ok || l.UnmarshalText([]byte(strings.TrimSpace(s))) != nil {
		return nil, fmt.Errorf("%q (want debug, info, warn or error)", fmt.Sprint(data))
	}
	return l, nil
}

// parseHook returns a hook decoding a string into a T with parse.
func parseHook[T any](parse func(string) (T, error)) mapstructure.DecodeHookFuncType {
	return func(_, to reflect.Type, data any) (any, error) {
		s, ok := data.(string)
		if to != reflect.TypeFor[T]() || !ok {
			return data, nil
		}
		return parse(strings.TrimSpace(s))
	}
}

// listHook decodes a list of names: a list from a flag or the config
// file, or a string from the environment, each item perhaps a
// comma-separated list itself. Empty items are dropped.
func listHook(_, to reflect.Type, data any) (any, error) {
	if to != listType {
		return data, nil
	}
	var items []string
	switch v := data.(type) {
	case nil:
	case string:
		items = []string{v}
	case []string:
		items = v
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%v is no name", e)
			}
			items = append(items, s)
		}
	default:
		return nil, fmt.Errorf("%v is no list", data)
	}
	list := []string{}
	for _, item := range items {
		for _, s := range strings.Split(item, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
	}
	return list, nil
}

// stringHook decodes a string setting, without the spaces around it. A
// number or boolean from YAML is taken as it is written; a list or map is
// refused rather than flattened.
func stringHook(_, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.String || data == nil {
		return data, nil
	}
	switch v := reflect.ValueOf(data); v.Kind() {
	case reflect.String:
		return strings.TrimSpace(v.String()), nil
	case reflect.Slice, reflect.Array, reflect.Map, reflect.Struct:
		return nil, errors.New("want a string, not a list or map")
	}
	return fmt.Sprint(data), nil
}

// numberHook decodes a number or boolean setting from a string, with an
// error that names the value (mapstructure's names the Go type). Numbers
// are decimal: "0x10" is not a number of fetches. A whole number from
// YAML with a fraction is refused rather than truncated.
func numberHook(_, to reflect.Type, data any) (any, error) {
	s, isString := data.(string)
	s = strings.TrimSpace(s)
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if isString {
			n, err := strconv.ParseInt(s, 10, to.Bits())
			if err != nil {
				return nil, fmt.Errorf("%q is not a whole number", s)
			}
			return n, nil
		}
		if f, ok := data.(float64); ok && f != math.Trunc(f) {
			return nil, fmt.Errorf("%v is not a whole number", f)
		}
	case reflect.Float32, reflect.Float64:
		if isString {
			f, err := strconv.ParseFloat(s, to.Bits())
			if err != nil {
				return nil, fmt.Errorf("%q is not a number", s)
			}
			return f, nil
		}
	case reflect.Bool:
		if isString {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not a boolean", s)
			}
			return b, nil
		}
	}
	return data, nil
}
