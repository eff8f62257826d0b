package caddymodule

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/caddyserver/caddy/v2"
)

// The documentation is README.md and xcaddy.md at the repository's root and
// the pages in caddymodule/docs. These tests keep it whole: every provider
// module payhook registers has a page linked from the README, every page is
// linked from the README, every relative link, anchor included, leads
// somewhere, and the development page names every fuzz target.

// docFiles is README.md, xcaddy.md and every page under docs/, as paths
// relative to this package's directory.
func docFiles(t *testing.T) []string {
	t.Helper()
	return append([]string{filepath.Join("..", "README.md"), filepath.Join("..", "xcaddy.md")}, docPages(t)...)
}

// docPages is every page under docs/.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join("docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("no pages in docs/")
	}
	return pages
}

// fencedBlock matches a fenced code block, whose brackets are code, not links.
var fencedBlock = regexp.MustCompile("(?ms)^[ \t]*(```|~~~).*?^[ \t]*(```|~~~)[ \t]*$")

// markdownLink matches an inline link or image: its text and its target.
var markdownLink = regexp.MustCompile(`!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(([^()\s]+)(?:\s+"[^"]*")?\)`)

// docLink is one link in a document.
type docLink struct {
	text   string // as written, code spans included
	target string
	line   int
}

// links returns the links of a Markdown document, outside code blocks.
func links(doc string) []docLink {
	doc = fencedBlock.ReplaceAllStringFunc(doc, blankKeepingLines)
	var found []docLink
	for _, m := range markdownLink.FindAllStringSubmatchIndex(doc, -1) {
		found = append(found, docLink{
			text:   doc[m[2]:m[3]],
			target: doc[m[4]:m[5]],
			line:   1 + strings.Count(doc[:m[0]], "\n"),
		})
	}
	return found
}

func blankKeepingLines(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' {
			return r
		}
		return ' '
	}, s)
}

// heading matches an ATX heading.
var heading = regexp.MustCompile(`(?m)^(#{1,6})[ \t]+(.+?)[ \t#]*$`)

// section is a heading of a document and the text up to the next heading
// of its level or above.
type section struct {
	level int
	body  string
}

// sections returns a document's sections by their GitHub anchors: the
// heading's text lowercased, punctuation but '-' and '_' dropped, spaces
// made hyphens, and "-1", "-2", … added to repeats.
func sections(doc string) map[string]section {
	doc = fencedBlock.ReplaceAllStringFunc(doc, blankKeepingLines)
	matches := heading.FindAllStringSubmatchIndex(doc, -1)
	seen := map[string]int{}
	found := map[string]section{}
	for i, m := range matches {
		level := m[3] - m[2]
		end := len(doc)
		for _, next := range matches[i+1:] {
			if next[3]-next[2] <= level {
				end = next[0]
				break
			}
		}
		slug := githubSlug(doc[m[4]:m[5]])
		if n := seen[slug]; n > 0 {
			seen[slug]++
			slug = slug + "-" + strconv.Itoa(n)
		} else {
			seen[slug] = 1
		}
		found[slug] = section{level: level, body: doc[m[0]:end]}
	}
	return found
}

// githubSlug is the anchor GitHub gives a heading's text.
func githubSlug(text string) string {
	// Links in a heading count by their text.
	text = markdownLink.ReplaceAllString(text, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(text)) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// resolve checks that a relative link from the document at from leads to
// a file or directory and, with an anchor, to a heading of that document.
// It returns what is wrong, or "" and the section the link names ("" for
// the whole document).
func resolve(from, target string) (problem, body string) {
	path, anchor, _ := strings.Cut(target, "#")
	file := from
	if path != "" {
		file = filepath.Join(filepath.Dir(from), filepath.FromSlash(path))
	}
	info, err := os.Stat(file)
	if err != nil {
		return "no such file " + file, ""
	}
	if anchor == "" {
		if info.IsDir() {
			return "", ""
		}
		doc, err := os.ReadFile(file)
		if err != nil {
			return err.Error(), ""
		}
		return "", string(doc)
	}
	if info.IsDir() || !strings.HasSuffix(file, ".md") {
		return "an anchor on " + file + ", which is not a Markdown page", ""
	}
	doc, err := os.ReadFile(file)
	if err != nil {
		return err.Error(), ""
	}
	s, ok := sections(string(doc))[anchor]
	if !ok {
		return "no heading #" + anchor + " in " + file, ""
	}
	return "", s.body
}

// external tells links that leave the repository, which are not checked.
func external(target string) bool {
	return strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:")
}

// TestDocsLinksResolve checks every relative link and anchor in README.md
// and docs/*.md.
func TestDocsLinksResolve(t *testing.T) {
	checked := 0
	for _, file := range docFiles(t) {
		doc, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links(string(doc)) {
			if external(l.target) {
				continue
			}
			checked++
			if problem, _ := resolve(file, l.target); problem != "" {
				t.Errorf("%s:%d: link [%s](%s): %s", file, l.line, l.text, l.target, problem)
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d relative links found: is the link pattern broken?", checked)
	}
}

// TestDocsEveryPageLinkedFromReadme checks that a reader who starts at the
// README can reach every page.
func TestDocsEveryPageLinkedFromReadme(t *testing.T) {
	readme := filepath.Join("..", "README.md")
	doc, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	linked := map[string]bool{}
	for _, l := range links(string(doc)) {
		path, _, _ := strings.Cut(l.target, "#")
		if path != "" && !external(path) {
			linked[filepath.Join("..", filepath.FromSlash(path))] = true
		}
	}
	for _, page := range docPages(t) {
		if !linked[filepath.Join("..", "caddymodule", page)] {
			t.Errorf("README.md links no %s", page)
		}
	}
}

// TestReadmeLinksEveryProvider checks that every provider module payhook
// registers in Caddy's registry (not those tests add, like
// thirdparty_test.go's acmepay) has a row in the README linking, under the text
// "`payhook <name>`", a page or section that names the provider's
// directive.
func TestReadmeLinksEveryProvider(t *testing.T) {
	readme := filepath.Join("..", "README.md")
	doc, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	all := links(string(doc))
	pkg := reflect.TypeFor[Handler]().PkgPath()
	var providers []caddy.ModuleInfo
	for _, info := range caddy.GetModules(ProvidersNamespace) {
		if reflect.Indirect(reflect.ValueOf(info.New())).Type().PkgPath() == pkg {
			providers = append(providers, info)
		}
	}
	if len(providers) < 40 {
		t.Fatalf("only %d provider modules registered by payhook", len(providers))
	}
	for _, info := range providers {
		name := info.ID.Name()
		directive := "`payhook " + name + "`"
		found := false
		for _, l := range all {
			if !strings.Contains(l.text, directive) || external(l.target) {
				continue
			}
			found = true
			problem, body := resolve(readme, l.target)
			if problem != "" {
				t.Errorf("%s: README.md:%d: %s", name, l.line, problem)
				continue
			}
			if !strings.Contains(body, "payhook "+name) && !strings.Contains(body, "`"+name+"`") {
				t.Errorf("%s: README.md:%d links %s, which does not name the provider (payhook %s)", name, l.line, l.target, name)
			}
		}
		if !found {
			t.Errorf("%s: the README links no page under the text %s", info.ID, directive)
		}
	}
}

// fuzzTarget matches a fuzz test's declaration.
var fuzzTarget = regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)

// TestDocsDevelopmentListsEveryFuzzTarget checks that the development page
// names every fuzz target of the module, so its list cannot fall behind.
func TestDocsDevelopmentListsEveryFuzzTarget(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("docs", "development.md"))
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	err = filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range fuzzTarget.FindAllStringSubmatch(string(src), -1) {
			found++
			if !strings.Contains(string(page), "`"+m[1]+"`") {
				t.Errorf("docs/development.md does not name the fuzz target %s (%s)", m[1], path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Error("no fuzz targets found")
	}
}
