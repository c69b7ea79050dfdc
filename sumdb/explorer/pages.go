package explorer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/transparency-dev/formats/proof"

	"github.com/sumdb/sumdb/tlog"
)

// Page sizes: DefaultPage records a page unless ?limit= asks for fewer or
// more, up to MaxPage.
const (
	DefaultPage = 50
	MaxPage     = 100
)

// MaxQuery is the longest module path or prefix a search or feed takes,
// in bytes.
const MaxQuery = 500

// A page holds what every page's layout shows.
type page struct {
	Title string
	Name  string // the log's name
}

func (e *Explorer) page(title string) page { return page{Title: title, Name: e.name} }

// An errorPage is the page of a refused or failed request.
type errorPage struct {
	page
	Status  int
	Message string
}

// A Row is one record in a list, as pages and their JSON twins show it.
type Row struct {
	ID        int64     `json:"id"`
	Path      string    `json:"path"`
	Version   string    `json:"version"`
	Time      time.Time `json:"time,omitzero"`         // when its batch was logged; zero if not known
	Hash      string    `json:"hash,omitempty"`        // "h1:..." of the module zip
	GoModHash string    `json:"go_mod_hash,omitempty"` // "h1:..." of its go.mod
	URL       string    `json:"url"`                   // its record page
}

func rowOf(e tlog.IndexEntry) Row {
	return Row{ID: e.ID, Path: e.Path, Version: e.Version, Time: e.Time.UTC(), URL: recordURL(e.ID)}
}

func recordURL(id int64) string { return "/record/" + strconv.FormatInt(id, 10) }

// A homePage is "/": the log, its newest head and its recent records.
type homePage struct {
	page       `json:"-"`
	LogName    string   `json:"name"`
	VKey       string   `json:"vkey"`
	TreeSize   int64    `json:"tree_size"`
	Checkpoint string   `json:"checkpoint,omitempty"` // the newest head's signed note, as /latest serves it
	Cosigners  []string `json:"cosigners"`            // the names on the note's other signature lines: the witnesses
	Records    []Row    `json:"records"`
	Next       string   `json:"next,omitempty"` // the next page of older records
}

func (e *Explorer) serveHome(w http.ResponseWriter, r *http.Request) {
	before, limit, err := parsePage(r, "before", math.MaxInt64)
	if err != nil {
		e.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	cp, err := e.checkpoint(r.Context())
	if err != nil {
		e.storeFailed(w, r, err)
		return
	}
	var es []tlog.IndexEntry
	if before > 0 { // no record comes before record 0
		es, err = e.index.RecentRecords(r.Context(), before, limit+1)
	}
	if err != nil {
		e.storeFailed(w, r, fmt.Errorf("recent records before %d: %w", before, err))
		return
	}
	p := homePage{
		page:       e.page(e.name),
		LogName:    e.name,
		VKey:       e.vkey,
		TreeSize:   e.log.Head().Size,
		Checkpoint: string(cp.note),
		Cosigners:  cp.cosigners,
		Records:    []Row{},
	}
	for i, en := range es {
		if i == limit {
			p.Next = pageURL(r, "/", "before", es[limit-1].ID)
			break
		}
		p.Records = append(p.Records, rowOf(en))
	}
	e.render(w, r, http.StatusOK, "home.html", p, p)
}

// A searchPage is "/search": the versions of a module or of the modules
// under a prefix.
type searchPage struct {
	page    `json:"-"`
	Query   string `json:"query"`
	Exact   bool   `json:"exact"`
	Records []Row  `json:"records"`
	Next    string `json:"next,omitempty"` // the next page of newer records
	Feed    string `json:"feed"`           // the Atom feed of the same search
}

func (e *Explorer) serveSearch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query, exact := q.Get("q"), q.Get("exact") == "1"
	if err := checkQuery(query, exact); err != nil {
		e.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	after, limit, err := parsePage(r, "after", -1)
	if err != nil {
		e.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	es, err := e.index.SearchRecords(r.Context(), query, exact, after, limit+1)
	if err != nil {
		e.storeFailed(w, r, fmt.Errorf("search %q: %w", query, err))
		return
	}
	p := searchPage{page: e.page("Search: " + query), Query: query, Exact: exact, Records: []Row{}, Feed: feedURL(query, exact)}
	for i, en := range es {
		if i == limit {
			p.Next = pageURL(r, "/search", "after", es[limit-1].ID)
			break
		}
		row := rowOf(en)
		rec, _, err := e.log.Lookup(r.Context(), en.Path, en.Version)
		if err == nil && rec.ID != en.ID {
			err = fmt.Errorf("the index has record %d, the log record %d", en.ID, rec.ID)
		}
		if err != nil {
			e.storeFailed(w, r, fmt.Errorf("look up %s@%s: %w", en.Path, en.Version, err))
			return
		}
		row.Hash, row.GoModHash = hashes(rec.Text)
		p.Records = append(p.Records, row)
	}
	e.render(w, r, http.StatusOK, "search.html", p, p)
}

// A recordPage is "/record/<id>": one record, its go.sum lines and its
// inclusion proof.
type recordPage struct {
	page `json:"-"`
	Row
	GoSum    string     `json:"go_sum"` // the record's text: its two go.sum lines
	Proof    proofJSON  `json:"proof"`
	ProofURL string     `json:"proof_url"` // the proof in the c2sp.org/tlog-proof format
	Tiles    []tileLink `json:"tiles"`
}

// A proofJSON is an inclusion proof of a record in a signed tree.
type proofJSON struct {
	TreeSize   int64        `json:"tree_size"`
	RootHash   string       `json:"root_hash"`
	Hashes     []string     `json:"hashes"`     // from the leaf's sibling up, as in RFC 6962, section 2.1.1
	Checkpoint string       `json:"checkpoint"` // the signed note of the tree
	raw        []xtlog.Hash // Hashes, for the c2sp.org/tlog-proof file
}

// A tileLink is a tile that holds a record or one of its hashes.
type tileLink struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

func (e *Explorer) serveRecord(w http.ResponseWriter, r *http.Request, rest string) {
	idText, sub, _ := strings.Cut(rest, "/")
	id, ok := parseID(idText)
	if !ok {
		e.fail(w, r, http.StatusBadRequest, "a record page is /record/<id>, where id is a decimal number", nil)
		return
	}
	if sub != "" && sub != "proof" {
		e.fail(w, r, http.StatusNotFound, "not found: a record has /record/<id> and /record/<id>/proof", nil)
		return
	}
	size := e.log.Head().Size
	if id >= size {
		e.fail(w, r, http.StatusNotFound, fmt.Sprintf("record %d is not in the log, whose size is %d", id, size), nil)
		return
	}
	row, text, err := e.record(r.Context(), id, size)
	if err != nil {
		e.storeFailed(w, r, err)
		return
	}
	proof, err := e.prove(r.Context(), id, text)
	if err != nil {
		e.storeFailed(w, r, err)
		return
	}
	if sub == "proof" {
		body := formatProof(id, proof)
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=\"record-%d.tlog-proof\"", id))
		h.Set("Cache-Control", "no-cache") // against the newest head, which changes
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != http.MethodHead {
			w.Write(body)
		}
		return
	}
	p := recordPage{
		page:     e.page(row.Path + " " + row.Version),
		Row:      row,
		GoSum:    string(text),
		Proof:    proof,
		ProofURL: recordURL(id) + "/proof",
		Tiles:    tiles(id, size),
	}
	e.render(w, r, http.StatusOK, "record.html", p, p)
}

// record returns record id of the log of the given size and its text,
// from the index and the store, or from its data tile if the index does
// not have it yet (its time is then not known).
func (e *Explorer) record(ctx context.Context, id, size int64) (Row, []byte, error) {
	es, err := e.index.RecentRecords(ctx, id+1, 1)
	if err != nil {
		return Row{}, nil, fmt.Errorf("find record %d in the index: %w", id, err)
	}
	if len(es) == 1 && es[0].ID == id {
		rec, _, err := e.log.Lookup(ctx, es[0].Path, es[0].Version)
		if err != nil {
			return Row{}, nil, fmt.Errorf("look up record %d, %s@%s: %w", id, es[0].Path, es[0].Version, err)
		}
		if rec.ID != id {
			return Row{}, nil, fmt.Errorf("look up record %d, %s@%s: the log has it as record %d", id, es[0].Path, es[0].Version, rec.ID)
		}
		row := rowOf(es[0])
		row.Hash, row.GoModHash = hashes(rec.Text)
		return row, rec.Text, nil
	}
	t := xtlog.Tile{H: tlog.TileHeight, L: -1, N: id / tlog.TileWidth, W: int(min(tlog.TileWidth, size-id/tlog.TileWidth*tlog.TileWidth))}
	data, err := e.log.ReadTile(ctx, t)
	if err != nil {
		return Row{}, nil, fmt.Errorf("read record %d: %w", id, err)
	}
	// A data tile is the records' texts, each followed by a blank line.
	recs := bytes.Split(data, []byte("\n\n"))
	k := id % tlog.TileWidth
	if int64(len(recs)) <= k+1 {
		return Row{}, nil, fmt.Errorf("read record %d: data tile %s holds %d records", id, t.Path(), len(recs)-1)
	}
	text := append(bytes.Clone(recs[k]), '\n')
	f := strings.Fields(string(text))
	if len(f) < 2 {
		return Row{}, nil, fmt.Errorf("read record %d: malformed text %q", id, clip(string(text), 200))
	}
	row := Row{ID: id, Path: f[0], Version: f[1], URL: recordURL(id)}
	row.Hash, row.GoModHash = hashes(text)
	return row, text, nil
}

// hashes returns the two hashes of a record's text: of the module zip and
// of its go.mod file.
func hashes(text []byte) (zip, gomod string) {
	for line := range strings.Lines(string(text)) {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		if strings.HasSuffix(f[1], "/go.mod") {
			gomod = f[2]
		} else {
			zip = f[2]
		}
	}
	return zip, gomod
}

// prove returns the inclusion proof of record id, whose text is text, in
// the newest tree that covers it: the one /latest serves (with its
// cosignatures) when it covers the record, else the log's newest head. The
// proof is checked before it is shown.
func (e *Explorer) prove(ctx context.Context, id int64, text []byte) (proofJSON, error) {
	cp, err := e.checkpoint(ctx)
	if err != nil {
		return proofJSON{}, err
	}
	if cp.tree.N <= id {
		h := e.log.Head()
		cp = checkpoint{note: h.Note, tree: xtlog.Tree{N: h.Size, Hash: h.Hash}}
	}
	thr := xtlog.TileHashReader(cp.tree, e.log.TileReader(ctx))
	p, err := xtlog.ProveRecord(cp.tree.N, id, thr)
	if err != nil {
		return proofJSON{}, fmt.Errorf("prove record %d in tree %d: %w", id, cp.tree.N, err)
	}
	if err := xtlog.CheckRecord(p, cp.tree.N, cp.tree.Hash, id, xtlog.RecordHash(text)); err != nil {
		return proofJSON{}, fmt.Errorf("check the proof of record %d in tree %d: %w", id, cp.tree.N, err)
	}
	out := proofJSON{TreeSize: cp.tree.N, RootHash: cp.tree.Hash.String(), Hashes: []string{}, Checkpoint: string(cp.note), raw: p}
	for _, h := range p {
		out.Hashes = append(out.Hashes, base64.StdEncoding.EncodeToString(h[:]))
	}
	return out, nil
}

// formatProof returns the proof of record id in the c2sp.org/tlog-proof
// format, as transparency-dev/formats writes it.
func formatProof(id int64, p proofJSON) []byte {
	tp := proof.TLogProof{Index: uint64(id), Checkpoint: []byte(p.Checkpoint)}
	for _, h := range p.raw {
		tp.Hashes = append(tp.Hashes, h)
	}
	return tp.Marshal()
}

// tiles returns the tiles of a tree of the given size that hold record id:
// its data tile and the hash tile of each level on its path to the root.
func tiles(id, size int64) []tileLink {
	var out []tileLink
	for l := -1; l < 8; l++ {
		level := max(l, 0)
		n := id >> (uint(level+1) * tlog.TileHeight)
		hashes := size >> (uint(level) * tlog.TileHeight) // at the tile's level
		if id>>(uint(level)*tlog.TileHeight) >= hashes {
			break // the record's subtree at this level is not complete yet
		}
		w := min(tlog.TileWidth, hashes-n*tlog.TileWidth)
		t := xtlog.Tile{H: tlog.TileHeight, L: l, N: n, W: int(w)}
		name := fmt.Sprintf("hash tile, level %d", l)
		if l == -1 {
			name = "data tile"
		}
		out = append(out, tileLink{Name: name, URL: "/" + t.Path()})
	}
	return out
}

// A checkpoint is the newest signed head as /latest serves it.
type checkpoint struct {
	note      []byte
	tree      xtlog.Tree
	cosigners []string // the names of its signature lines other than the log's
}

// checkpoint returns the newest head as /latest serves it, or a zero
// checkpoint while the log is empty.
func (e *Explorer) checkpoint(ctx context.Context) (checkpoint, error) {
	var msg []byte
	if e.latest == nil {
		msg = e.log.Head().Note
	} else {
		var err error
		if msg, err = e.latest(ctx); err != nil {
			return checkpoint{}, fmt.Errorf("read the newest head: %w", err)
		}
	}
	if msg == nil {
		return checkpoint{cosigners: []string{}}, nil
	}
	n, err := note.Open(msg, note.VerifierList(e.log.Verifier()))
	if err != nil {
		return checkpoint{}, fmt.Errorf("open the newest head: %w", err)
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		return checkpoint{}, fmt.Errorf("parse the newest head: %w", err)
	}
	cp := checkpoint{note: msg, tree: tree, cosigners: []string{}}
	for _, s := range n.UnverifiedSigs {
		cp.cosigners = append(cp.cosigners, s.Name)
	}
	return cp, nil
}

// checkQuery checks a search's module path (exact) or prefix.
func checkQuery(q string, exact bool) error {
	if q == "" {
		return fmt.Errorf("no module path: give a module path, or a prefix such as example.com/org/")
	}
	if len(q) > MaxQuery {
		return fmt.Errorf("the module path is %d bytes long, more than %d: give a shorter prefix", len(q), MaxQuery)
	}
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("the module path %q has a space or a character that is not printable ASCII: module paths have none", clip(q, 100))
		}
	}
	if exact {
		if err := module.CheckPath(q); err != nil {
			return fmt.Errorf("%v; for a prefix, search without \"exact\"", err)
		}
	}
	return nil
}

// parseID parses a record id: a decimal number without sign or leading
// zeros.
func parseID(s string) (int64, bool) {
	if s == "" || len(s) > 18 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// parsePage parses the paging parameters of r: the record id of
// parameter key (def if absent) and ?limit= (DefaultPage if absent, at
// most MaxPage).
func parsePage(r *http.Request, key string, def int64) (id int64, limit int, err error) {
	q := r.URL.Query()
	id, limit = def, DefaultPage
	if s := q.Get(key); s != "" {
		var ok bool
		if id, ok = parseID(s); !ok {
			return 0, 0, fmt.Errorf("%s must be a record id: a decimal number", key)
		}
	}
	if s := q.Get("limit"); s != "" {
		n, ok := parseID(s)
		if !ok || n < 1 {
			return 0, 0, fmt.Errorf("limit must be a number from 1 to %d", MaxPage)
		}
		limit = int(min(n, MaxPage))
	}
	return id, limit, nil
}

// pageURL returns the URL of the page of r's path after or before (key)
// record id, with r's other parameters.
func pageURL(r *http.Request, path, key string, id int64) string {
	q := r.URL.Query()
	q.Set(key, strconv.FormatInt(id, 10))
	return path + "?" + q.Encode()
}

// feedURL returns the URL of the Atom feed of a search.
func feedURL(query string, exact bool) string {
	q := url.Values{"module": {query}}
	if exact {
		q.Set("exact", "1")
	}
	return "/feed?" + q.Encode()
}

// encodeJSON writes v as indented JSON.
func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// timefmt formats a logged time for a page.
func timefmt(t time.Time) string {
	if t.IsZero() {
		return "not indexed yet"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
