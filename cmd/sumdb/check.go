package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/mod/modfile"

	"github.com/sumdb/sumdb/internal/goauth"
	"github.com/sumdb/sumdb/sumdb/check"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/sumdb/witnessed"
)

const checkUsage = `Usage: sumdb check [flags] [FILE...]

Check verifies go.sum and go.work.sum files against a checksum database:
each line's hash must be the one the log holds, in a record proved by a
signed tree head, and every tree head must be consistent with the newest one
verified before, kept in the --state file, so that a log that forks is
caught between runs. It prints one line per problem and a summary.

FILE defaults to the go.sum of the module in the current directory or, in a
workspace, to the go.work.sum and the go.sum of each module of the workspace.

The database is --sumdb, else the go command's GOSUMDB, reached as the go
command reaches it: at the URL given with the key, else through the first
proxy of GOPROXY that serves it, else at https://<name>, with the
credentials that GOAUTH gives (.netrc by default; the netrc and git modes;
over https only). Lines of modules
matching GONOSUMDB (or GOPRIVATE, when GONOSUMDB is empty) are skipped and
never sent. These are read with "go env", so the environment and the go env
file both count.

Exit status, the first that applies in this order:
  1  a line's hash differs from the log's, or the log is inconsistent or
     hostile: a fork (SECURITY ERROR), an answer that fails its proof, or a
     tree head of more records than any log holds; or, with a witness
     policy, the log's newest tree head lacks a quorum of cosignatures
  3  a line could not be checked (network, server error, a record newer
     than the witnessed tree head), the state file
     could not be written, or check could not start (bad flag, unreadable
     file or state file)
  2  a line is unknown to the log, malformed, or gives a module version
     another hash than another line does, when the log cannot tell which
     is right (it does not have the version, or the module is private)
  0  every line verified or skipped
The format never changes the exit status.

` + witnessFlagsUsage + `For check, the log's newest tree head (/latest) must meet the policy, else
check fails (exit status 1) naming the witnesses that cosigned it and
those missing. That head becomes the one lookups are proved against: each
lookup's record must be below its size, and the newer head a lookup comes
with is proved consistent with it, so that every line verified is in a
tree the witnesses cosigned. A line whose record the log added after that
head is not checked yet (exit status 3): run check again once the
witnesses have cosigned a newer head.

--state, --format, --concurrency, --witness, --quorum and --witness-policy
can also be set as SUMDB_CHECK_STATE, SUMDB_CHECK_FORMAT,
SUMDB_CHECK_CONCURRENCY, SUMDB_CHECK_WITNESS, SUMDB_CHECK_QUORUM and
SUMDB_CHECK_WITNESS_POLICY.

Flags:
`

// Defaults of the check settings.
const (
	defaultCheckFormat      = "text"
	defaultCheckConcurrency = 8
	maxCheckConcurrency     = 256
)

// statusCouldNotCheck is the exit status of a check that could not check.
const statusCouldNotCheck = 3

// newCheckFlags returns the flag set of check.
func newCheckFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("check", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.String("sumdb", "", "checksum `database`: \"<verifier key> [URL]\", or the bare name of the go command's built-in checksum database (default: go env GOSUMDB)")
	fs.String("state", "", "`file` keeping the newest verified tree head between runs (default <user cache dir>/sumdb/check/<name>.latest; --state= keeps none)")
	fs.String("format", defaultCheckFormat, "output `format`: text, json or github (GitHub Actions annotations)")
	fs.Int("concurrency", defaultCheckConcurrency, "module versions looked up at once, 1 to 256")
	addWitnessFlags(fs)
	return fs
}

// A CheckConfig is the validated configuration of "sumdb check". Viper
// decodes the settings into the fields tagged with their keys.
type CheckConfig struct {
	GOSUMDB     string       `mapstructure:"sumdb"` // which database
	State       string       `mapstructure:"state"` // state file; "" with StateSet means none
	Format      check.Format `mapstructure:"format"`
	Concurrency int          `mapstructure:"concurrency"`
	WitnessKeys []string     `mapstructure:"witness"`        // witness verifier keys
	Quorum      int          `mapstructure:"quorum"`         // of WitnessKeys; 0 for all
	PolicyFile  string       `mapstructure:"witness-policy"` // instead of WitnessKeys and Quorum

	Witnesses *witnessed.Policy `mapstructure:"-"` // from WitnessKeys and Quorum, or PolicyFile; nil for none

	GOPROXY          string              `mapstructure:"-"` // how to reach the database
	Auth             *goauth.Credentials `mapstructure:"-"` // the database's credentials, from GOAUTH
	NoSumDB, Private string              `mapstructure:"-"` // GONOSUMDB and GOPRIVATE
	StateSet         bool                `mapstructure:"-"` // State was given, not the default
	Files            []string            `mapstructure:"-"` // the files to check, by name to report
	Paths            []string            `mapstructure:"-"` // the files to read, by path; parallel to Files
	Warnings         []string            `mapstructure:"-"` // things the user may want to fix
}

// runCheck runs "sumdb check". It returns an *exitError carrying the exit
// status of the check; the report is already on stdout.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCheckFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, checkUsage+fs.FlagUsages())
			return nil
		}
		return couldNotCheck(usageErrorf("check: %v (run sumdb check --help)", err))
	}
	cfg, err := loadCheckConfig(ctx, fs, goEnv)
	if err != nil {
		return couldNotCheck(err)
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "sumdb: check: %s\n", w)
	}
	remote, err := client.Open(ctx, client.Config{GOSUMDB: cfg.GOSUMDB, GOPROXY: cfg.GOPROXY, Auth: cfg.Auth})
	if err != nil {
		return couldNotCheck(fmt.Errorf("check: %w", err))
	}
	if !cfg.StateSet {
		if cfg.State, err = defaultStateFile(remote.Verifier.Name()); err != nil {
			return couldNotCheck(err)
		}
	}
	files := make([]check.File, len(cfg.Paths))
	for i, p := range cfg.Paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return couldNotCheck(fmt.Errorf("check: %w", err))
		}
		files[i] = check.File{Name: cfg.Files[i], Data: data}
	}
	ccfg := check.Config{
		Remote:      remote,
		State:       cfg.State,
		NoSumDB:     cfg.NoSumDB,
		Private:     cfg.Private,
		Concurrency: cfg.Concurrency,
		Witnesses:   cfg.Witnesses,
	}
	if isTerminal(stderr) {
		ccfg.Progress = stderr
	}
	rep, err := check.Run(ctx, ccfg, files)
	if err != nil {
		return couldNotCheck(err)
	}
	if err := rep.Write(stdout, cfg.Format); err != nil {
		return couldNotCheck(fmt.Errorf("check: write report: %w", err))
	}
	if code := rep.ExitStatus(); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// couldNotCheck returns err as the error of a check that could not check.
func couldNotCheck(err error) error {
	return &exitError{code: statusCouldNotCheck, err: err}
}

// loadCheckConfig decodes the parsed flags fs, the SUMDB_CHECK_*
// environment and the go command's settings into a validated CheckConfig.
// A flag on the command line wins over the environment, which wins over
// the default.
func loadCheckConfig(ctx context.Context, fs *pflag.FlagSet, goEnv goEnvFunc) (*CheckConfig, error) {
	s, err := newToolSettings("check", fs)
	if err != nil {
		return nil, err
	}
	cfg := &CheckConfig{}
	rules := []rule{
		{"concurrency", fmt.Sprintf("want a number from 1 to %d", maxCheckConcurrency), &cfg.Concurrency,
			func() bool { return cfg.Concurrency >= 1 && cfg.Concurrency <= maxCheckConcurrency }},
	}
	rules = append(rules, witnessRules(&cfg.WitnessKeys, &cfg.Quorum)...)
	if err := s.decode(cfg, rules); err != nil {
		return nil, err
	}
	if cfg.GOSUMDB, err = gosumdb(ctx, s, cfg.GOSUMDB, goEnv); err != nil {
		return nil, err
	}
	if cfg.GOPROXY, err = reach(ctx, "check", goEnv, cfg.GOSUMDB, false, "give the database's URL with --sumdb \"<verifier key> <URL>\""); err != nil {
		return nil, err
	}
	if cfg.Auth, err = goAuth(ctx, "check", goEnv); err != nil {
		return nil, err
	}
	const privateWhy = "without it, private modules cannot be told from public ones, and must not be sent to the log"
	if cfg.NoSumDB, err = fromGo(ctx, "check", goEnv, "GONOSUMDB", privateWhy); err != nil {
		return nil, err
	}
	if cfg.Private, err = fromGo(ctx, "check", goEnv, "GOPRIVATE", privateWhy); err != nil {
		return nil, err
	}
	if cfg.NoSumDB == cfg.Private {
		// go env prints GOPRIVATE as GONOSUMDB when GONOSUMDB is not set:
		// name the variable the user most likely set.
		cfg.NoSumDB = ""
	}

	cfg.StateSet = cfg.State != "" || fs.Lookup("state").Changed
	if cfg.Format, err = check.ParseFormat(string(cfg.Format)); err != nil {
		return nil, s.invalid("format", "%v", err)
	}
	if err := s.check(rules); err != nil {
		return nil, err
	}
	if cfg.Witnesses, err = witnessPolicy(s, cfg.WitnessKeys, cfg.Quorum, cfg.PolicyFile); err != nil {
		return nil, err
	}

	if fs.NArg() > 0 {
		for _, f := range fs.Args() {
			cfg.Files = append(cfg.Files, f)
			cfg.Paths = append(cfg.Paths, f)
		}
	} else if cfg.Paths, err = defaultSumFiles(ctx, goEnv); err != nil {
		return nil, err
	} else {
		for _, p := range cfg.Paths {
			cfg.Files = append(cfg.Files, relName(p))
		}
	}
	if cfg.Format == check.GitHub {
		// Annotations name files relative to the repository's root.
		if ws := os.Getenv("GITHUB_WORKSPACE"); ws != "" {
			for i, p := range cfg.Paths {
				cfg.Files[i] = relNameTo(ws, p)
			}
		}
	}
	cfg.Warnings = unknownEnv(os.Environ())
	return cfg, nil
}

// defaultSumFiles returns the go.sum files of the module or workspace in the
// current directory, as the go command finds them (go env GOWORK, GOMOD):
// in a workspace, its go.work.sum and the go.sum of each module it uses;
// else the module's go.sum. Files that do not exist are left out: a module
// without dependencies has no go.sum.
func defaultSumFiles(ctx context.Context, goEnv goEnvFunc) ([]string, error) {
	gowork, err := goEnv(ctx, "GOWORK")
	if err != nil {
		return nil, fmt.Errorf("check: cannot find the current workspace (%v): name the go.sum files to check", err)
	}
	var candidates []string
	if gowork != "" && gowork != "off" {
		dir := filepath.Dir(gowork)
		data, err := os.ReadFile(gowork)
		if err != nil {
			return nil, fmt.Errorf("check: read workspace: %w", err)
		}
		wf, err := modfile.ParseWork(gowork, data, nil)
		if err != nil {
			return nil, fmt.Errorf("check: %w", err)
		}
		candidates = append(candidates, filepath.Join(dir, "go.work.sum"))
		for _, u := range wf.Use {
			p := filepath.FromSlash(u.Path)
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			candidates = append(candidates, filepath.Join(p, "go.sum"))
		}
	} else {
		gomod, err := goEnv(ctx, "GOMOD")
		if err != nil {
			return nil, fmt.Errorf("check: cannot find the current module (%v): name the go.sum files to check", err)
		}
		if gomod == "" || gomod == os.DevNull {
			return nil, errors.New("check: no module in the current directory (go env GOMOD is empty): run sumdb check in a module, or name the go.sum files to check")
		}
		candidates = append(candidates, filepath.Join(filepath.Dir(gomod), "go.sum"))
	}
	var files []string
	for _, c := range candidates {
		if _, err := os.Stat(c); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("check: %w", err)
		}
		files = append(files, c)
	}
	return files, nil
}

// relName returns file relative to the current directory, for shorter
// messages, or else file.
func relName(file string) string {
	wd, err := os.Getwd()
	if err != nil {
		return file
	}
	rel, err := filepath.Rel(wd, file)
	if err != nil {
		return file
	}
	return filepath.ToSlash(rel)
}

// relNameTo returns file relative to dir, with slashes, if it is below dir;
// else file.
func relNameTo(dir, file string) string {
	abs, err := filepath.Abs(file)
	if err != nil {
		return file
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return file
	}
	return filepath.ToSlash(rel)
}

// defaultStateFile returns the default state file of database name:
// <user cache dir>/sumdb/check/<name>.latest, the name escaped into one
// file name.
func defaultStateFile(name string) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("check: no user cache directory for the default state file (%v): give --state FILE, or --state= to keep none", err)
	}
	return filepath.Join(dir, "sumdb", "check", escapeFileName(name)+".latest"), nil
}

// escapeFileName escapes a database name (host[/path], perhaps with a
// port) into one portable file name: bytes other than letters, digits, '-',
// '.' and '_' become %XX.
func escapeFileName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// goAuth returns the credentials that the go command's GOAUTH gives, for
// the database that command cmd reads.
func goAuth(ctx context.Context, cmd string, goEnv goEnvFunc) (*goauth.Credentials, error) {
	val, err := fromGo(ctx, cmd, goEnv, "GOAUTH", "it says which credentials to send to a checksum database that only its users may read")
	if err != nil {
		return nil, err
	}
	auth, err := goauth.New(val, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return auth, nil
}
