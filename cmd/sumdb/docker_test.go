package main

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/sumdb/note"
)

// No Docker engine runs where the tests run: these tests read the
// Dockerfile and docker-compose.yml, check them against the configuration
// serve reads, and build the binary as the Dockerfile does.

// A dockerInstruction is one instruction of a Dockerfile, its continuation
// lines joined.
type dockerInstruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// A dockerStage is one FROM and the instructions after it.
type dockerStage struct {
	from  string // the FROM arguments
	instr []dockerInstruction
}

// readDockerfile returns the stages of the Dockerfile at the root of the
// repository.
func readDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var line string
	for l := range strings.Lines(string(data)) {
		l = strings.TrimSpace(l)
		if line == "" && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if rest, ok := strings.CutSuffix(l, `\`); ok {
			line += rest + " "
			continue
		}
		line += l
		cmd, args, _ := strings.Cut(line, " ")
		line = ""
		in := dockerInstruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, dockerStage{from: in.args})
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before FROM", in.cmd)
		}
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, in)
	}
	return stages
}

// all returns the arguments of every instruction cmd of the stage.
func (s dockerStage) all(cmd string) []string {
	var args []string
	for _, in := range s.instr {
		if in.cmd == cmd {
			args = append(args, in.args)
		}
	}
	return args
}

// one returns the arguments of the one instruction cmd of the stage.
func (s dockerStage) one(t *testing.T, cmd string) string {
	t.Helper()
	args := s.all(cmd)
	if len(args) != 1 {
		t.Fatalf("Dockerfile stage FROM %s: %d %s instructions, want 1", s.from, len(args), cmd)
	}
	return args[0]
}

// env returns the variables ENV sets in the stage (NAME=value forms).
func (s dockerStage) env(t *testing.T) map[string]string {
	t.Helper()
	env := make(map[string]string)
	for _, args := range s.all("ENV") {
		for _, kv := range strings.Fields(args) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("Dockerfile: ENV %s: want NAME=value", args)
			}
			env[k] = v
		}
	}
	return env
}

// execForm parses a JSON array instruction (ENTRYPOINT, CMD).
func execForm(t *testing.T, cmd, args string) []string {
	t.Helper()
	var list []string
	if err := json.Unmarshal([]byte(args), &list); err != nil {
		t.Fatalf("Dockerfile: %s %s: want the exec (JSON) form, so that sumdb is PID 1 and gets SIGTERM: %v", cmd, args, err)
	}
	return list
}

// goBuildRun returns the words of the build stage's RUN that builds sumdb.
func goBuildRun(t *testing.T, build dockerStage) []string {
	t.Helper()
	for _, run := range build.all("RUN") {
		if strings.Contains(run, "go build") {
			return strings.Fields(run)
		}
	}
	t.Fatal("Dockerfile: the build stage has no RUN go build")
	return nil
}

// TestDockerfile checks that the image is what operators expect and agrees
// with serve's configuration: a multi-stage build of a static binary, a
// small final image that runs sumdb as a user other than root, the data
// directory a volume owned by that user, the port exposed the one listened
// on, and settings only through variables serve reads.
func TestDockerfile(t *testing.T) {
	clearEnv(t)
	stages := readDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build.from, "golang:") || !strings.HasSuffix(build.from, " AS build") {
		t.Errorf("Dockerfile: first stage FROM %s, want the golang image AS build", build.from)
	}
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		t.Errorf("Dockerfile: final stage FROM %s, want distroless static or scratch", final.from)
	}
	words := goBuildRun(t, build)
	for _, w := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/sumdb"} {
		if !slices.Contains(words, w) {
			t.Errorf("Dockerfile: RUN %s lacks %s", strings.Join(words, " "), w)
		}
	}

	user := final.one(t, "USER")
	uid, _, _ := strings.Cut(user, ":")
	if uid == "root" || uid == "0" {
		t.Errorf("Dockerfile: USER %s, want a user other than root", user)
	}
	entry := execForm(t, "ENTRYPOINT", final.one(t, "ENTRYPOINT"))
	if len(entry) != 1 || filepath.Base(entry[0]) != "sumdb" {
		t.Errorf("Dockerfile: ENTRYPOINT %q, want the sumdb binary", entry)
	}
	if cmd := execForm(t, "CMD", final.one(t, "CMD")); len(cmd) == 0 || cmd[0] != "serve" {
		t.Errorf("Dockerfile: CMD %q, want serve", cmd)
	}
	binary := false
	for _, c := range final.all("COPY") {
		f := strings.Fields(c)
		binary = binary || f[len(f)-1] == entry[0]
	}
	if !binary {
		t.Errorf("Dockerfile: no COPY puts the binary at %s", entry[0])
	}

	// The image's settings make a valid configuration, listening on all
	// addresses at the exposed port, with the data directory the volume,
	// once the operator gives the upstream, the public checksum database
	// and the private paths: the image has no go command to ask for
	// GOPROXY, GOSUMDB and GONOSUMDB, and names no proxy of its own.
	env := final.env(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	noGo := func(context.Context, string) (string, error) { return "", os.ErrNotExist }
	if _, err := load(t, nil, noGo); err == nil || !strings.Contains(err.Error(), "SUMDB_UPSTREAM") {
		t.Errorf("Dockerfile ENV %v without SUMDB_UPSTREAM: %v, want an error saying to set it", env, err)
	}
	t.Setenv("SUMDB_UPSTREAM", "http://goproxy.test")
	if _, err := load(t, nil, noGo); err == nil || !strings.Contains(err.Error(), "SUMDB_PUBLIC_SUMDB") {
		t.Errorf("Dockerfile ENV %v without SUMDB_PUBLIC_SUMDB: %v, want an error saying to set it", env, err)
	}
	_, vkey, err := note.GenerateKey(rand.Reader, "sum.public.test")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SUMDB_PUBLIC_SUMDB", vkey)
	if _, err := load(t, nil, noGo); err == nil || !strings.Contains(err.Error(), "SUMDB_PRIVATE") {
		t.Errorf("Dockerfile ENV %v without SUMDB_PRIVATE: %v, want an error saying to set it", env, err)
	}
	t.Setenv("SUMDB_PRIVATE", "off")
	cfg, err := load(t, nil, func(context.Context, string) (string, error) {
		t.Error("the image has no go command, but serve would run go env")
		return "", os.ErrNotExist
	})
	if err != nil {
		t.Fatalf("Dockerfile ENV %v: %v", env, err)
	}
	if len(cfg.Warnings) > 0 {
		t.Errorf("Dockerfile ENV: warnings %q", cfg.Warnings)
	}
	host, port, _ := net.SplitHostPort(cfg.Listen)
	if host != "0.0.0.0" && host != "" {
		t.Errorf("Dockerfile: listens on %s, want all addresses, reachable through a published port", cfg.Listen)
	}
	if expose := final.one(t, "EXPOSE"); strings.TrimSuffix(expose, "/tcp") != port {
		t.Errorf("Dockerfile: EXPOSE %s, want the port listened on, %s", expose, port)
	}
	if volume := final.one(t, "VOLUME"); strings.Trim(volume, `[]"`) != cfg.DataDir || !filepath.IsAbs(cfg.DataDir) {
		t.Errorf("Dockerfile: VOLUME %s, data directory %s; want the same absolute path", volume, cfg.DataDir)
	}
	// A new named volume takes the owner of the image's directory: it must
	// be the user's, or serve cannot write there.
	owned := false
	for _, c := range final.all("COPY") {
		f := strings.Fields(c)
		owned = owned || f[len(f)-1] == cfg.DataDir && slices.Contains(f, "--chown="+user)
	}
	if !owned {
		t.Errorf("Dockerfile: no COPY --chown=%s creates %s, so the volume would belong to root", user, cfg.DataDir)
	}
}

// TestDockerCompose checks that docker-compose.yml builds the image rather
// than compiling at every start, and that the environment it gives sumdb,
// over the image's, makes a valid configuration with the intended values.
func TestDockerCompose(t *testing.T) {
	clearEnv(t)
	data, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build           any       `yaml:"build"`
			Image           string    `yaml:"image"`
			Command         any       `yaml:"command"`
			Environment     yaml.Node `yaml:"environment"`
			Volumes         []string  `yaml:"volumes"`
			Ports           []string  `yaml:"ports"`
			StopGracePeriod string    `yaml:"stop_grace_period"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	svc, ok := compose.Services["sumdb"]
	if !ok {
		t.Fatal("docker-compose.yml has no sumdb service")
	}
	if svc.Build != "." || strings.HasPrefix(svc.Image, "golang") || svc.Command != nil {
		t.Errorf("docker-compose.yml: sumdb build %v, image %q, command %v; want the Dockerfile's image built from . and run as it is", svc.Build, svc.Image, svc.Command)
	}

	stages := readDockerfile(t)
	env := stages[len(stages)-1].env(t)
	// The shell of the operator who runs docker compose gives the upstream
	// and the public checksum database; the image has no go command.
	_, vkey, err := note.GenerateKey(rand.Reader, "sum.public.test")
	if err != nil {
		t.Fatal(err)
	}
	shell := map[string]string{"SUMDB_UPSTREAM": "http://goproxy.test", "SUMDB_PUBLIC_SUMDB": vkey}
	for k, v := range composeEnv(t, &svc.Environment, shell) {
		env[k] = v
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := load(t, nil, func(_ context.Context, name string) (string, error) {
		return "", fmt.Errorf("no go command in the image to ask for %s", name)
	})
	if err != nil {
		t.Fatalf("docker-compose.yml's sumdb environment: %v", err)
	}
	if len(cfg.Warnings) > 0 {
		t.Errorf("docker-compose.yml's sumdb environment: warnings %q", cfg.Warnings)
	}
	if cfg.DatabaseURL == "" || !strings.Contains(cfg.DatabaseURL, "@postgres:5432/") {
		t.Errorf("DatabaseURL = %q, want the postgres service", cfg.DatabaseURL)
	}
	if cfg.PublicSumDB != vkey || cfg.Private != "" {
		t.Errorf("PublicSumDB, Private = %q, %q; want the SUMDB_PUBLIC_SUMDB of the shell and none", cfg.PublicSumDB, cfg.Private)
	}
	if cfg.Name != defaultName || cfg.Upstream != "http://goproxy.test" {
		t.Errorf("Name, Upstream = %q, %q; want %q and the SUMDB_UPSTREAM of the shell", cfg.Name, cfg.Upstream, defaultName)
	}
	if !slices.Contains(svc.Volumes, "sumdb-data:"+cfg.DataDir) {
		t.Errorf("docker-compose.yml: sumdb volumes %q, want sumdb-data on the data directory %s", svc.Volumes, cfg.DataDir)
	}
	_, port, _ := net.SplitHostPort(cfg.Listen)
	published := false
	for _, p := range svc.Ports {
		published = published || strings.HasSuffix(p, ":"+port)
	}
	if !published {
		t.Errorf("docker-compose.yml: sumdb ports %q, want one to the port listened on, %s", svc.Ports, port)
	}
	// Docker kills a container 10 s after SIGTERM unless told otherwise.
	if d, err := time.ParseDuration(svc.StopGracePeriod); err != nil || d <= shutdownTimeout {
		t.Errorf("stop_grace_period %q, want more than serve's shutdown timeout %v", svc.StopGracePeriod, shutdownTimeout)
	}
}

// composeEnv returns a service's environment (a map or a list of
// NAME=value), interpolating ${NAME:-default} as if the variable were
// unset, and ${NAME:?error}, which compose refuses to start without, with
// shell[NAME], failing the test if shell has no value for it.
func composeEnv(t *testing.T, node *yaml.Node, shell map[string]string) map[string]string {
	t.Helper()
	env := make(map[string]string)
	switch node.Kind {
	case yaml.MappingNode:
		var m map[string]string
		if err := node.Decode(&m); err != nil {
			t.Fatalf("sumdb environment: %v", err)
		}
		for k, v := range m {
			env[k] = v
		}
	case yaml.SequenceNode:
		var list []string
		if err := node.Decode(&list); err != nil {
			t.Fatalf("sumdb environment: %v", err)
		}
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	default:
		t.Fatal("sumdb service has no environment")
	}
	interp := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-?])([^}]*))?\}`)
	for k, v := range env {
		env[k] = interp.ReplaceAllStringFunc(v, func(ref string) string {
			m := interp.FindStringSubmatch(ref)
			if m[2] == "-" {
				return m[3]
			}
			val, ok := shell[m[1]]
			if !ok {
				t.Errorf("docker-compose.yml needs %s from the shell (%s), which the test does not give", m[1], m[3])
			}
			return val
		})
	}
	return env
}

// TestDockerfileBuild runs the Dockerfile's go build, as it is written
// there, and checks that the binary is static (no ELF interpreter, no
// shared library), as the distroless static image requires.
func TestDockerfileBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the static build of the Dockerfile")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the image is Linux: its binary is checked on Linux")
	}
	t.Parallel()
	words := goBuildRun(t, readDockerfile(t)[0])
	out := filepath.Join(t.TempDir(), "sumdb")
	var env, args []string
	for i := 0; i < len(words); i++ {
		switch w := words[i]; {
		case len(args) == 0 && strings.Contains(w, "="):
			env = append(env, w)
		case w == "go" && len(args) == 0:
			args = append(args, goCommand(t))
		case w == "-o" && i+1 < len(words):
			args = append(args, "-o", out)
			i++
		default:
			args = append(args, w)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = filepath.Join(pkgDir, "..", "..") // the Dockerfile's WORKDIR holds the repository
	// The build context has no .git (.dockerignore): no VCS stamp there either.
	cmd.Env = append(append(environ(), "GOFLAGS=-buildvcs=false"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", strings.Join(env, " "), strings.Join(args, " "), err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the Dockerfile's binary has an ELF interpreter: it is not static")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the Dockerfile's binary needs shared libraries %q (%v): it is not static", libs, err)
	}
	// It runs with none of the build's environment.
	run := exec.CommandContext(ctx, out, "help")
	run.Env = []string{}
	if b, err := run.CombinedOutput(); err != nil || !strings.Contains(string(b), "sumdb serve") {
		t.Errorf("the Dockerfile's binary: sumdb help: %v\n%s", err, b)
	}
}
