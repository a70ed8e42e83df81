// Command govectors writes golden test vectors for the Rust port of the
// IntentGate gateway, produced by Go's own encoding/json, crypto and time
// packages:
//
//	shared/tests/vectors/go_tokens.json  capability tokens (payload / caveat
//	                                     canonical JSON, HMAC chain, wire form)
//	shared/tests/vectors/go_audit.json   audit canonical JSON, ts
//	                                     normalisation and the SHA-256 chain
//
// Everything is derived from fixed inputs: no randomness, no clock. Running
// it twice gives byte-identical files.
//
// Go version note: the gateway is built with Go 1.25. Since Go 1.22,
// encoding/json writes U+0008 and U+000C as `\b` and `\f`; older releases
// (this tool is usually run with Debian's Go 1.19) write `\u0008` and
// `\u000c`. Every other byte of json.Marshal output for the types used here
// is identical across those versions. goJSON() below therefore takes the
// real json.Marshal output and rewrites just those two escapes when the
// running toolchain is older than 1.22, so the vectors always describe what
// the production gateway emits. The pre-1.22 bytes are recorded separately
// ("go_pre_1_22") where they differ.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"
)

func main() {
	outDir := flag.String("out", "../../shared/tests/vectors", "directory to write go_tokens.json and go_audit.json into")
	flag.Parse()

	selfCheck()

	tokens := buildTokenVectors()
	audit := buildAuditVectors()

	writeVectorFile(filepath.Join(*outDir, "go_tokens.json"), tokens)
	writeVectorFile(filepath.Join(*outDir, "go_audit.json"), audit)
}

// ---------------------------------------------------------------------------
// JSON helpers

// goJSON returns the bytes the production gateway's json.Marshal (Go >= 1.22)
// produces for v, plus the bytes the running toolchain's json.Marshal
// produced (identical when the toolchain is >= 1.22 or when v contains no
// U+0008 / U+000C).
func goJSON(v any) (modern, raw []byte) {
	raw, err := json.Marshal(v)
	if err != nil {
		fail("json.Marshal: %v", err)
	}
	modern = modernEscapes(raw)
	if !bytes.Equal(modern, raw) {
		// The rewrite must never change the decoded value.
		var a, b any
		if json.Unmarshal(raw, &a) != nil || json.Unmarshal(modern, &b) != nil || !reflect.DeepEqual(a, b) {
			fail("escape rewrite changed the JSON value of %q", raw)
		}
	}
	return modern, raw
}

// modernEscapes rewrites the `\u0008` and `\u000c` escapes of pre-1.22
// encoding/json output into `\b` and `\f`. The input is json.Marshal output,
// so a backslash only ever appears inside a string and starts one of
// \\ \" \n \r \t \uXXXX; walking escape by escape keeps text such as a
// literal backslash followed by "u0008" (encoded `\\u0008`) untouched.
func modernEscapes(in []byte) []byte {
	if toolchainAtLeast(1, 22) {
		return in
	}
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); i++ {
		c := in[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 >= len(in) {
			fail("dangling backslash in %q", in)
		}
		if in[i+1] != 'u' {
			out = append(out, c, in[i+1])
			i++
			continue
		}
		if i+6 > len(in) {
			fail("short \\u escape in %q", in)
		}
		switch string(in[i+2 : i+6]) {
		case "0008":
			out = append(out, '\\', 'b')
		case "000c":
			out = append(out, '\\', 'f')
		default:
			out = append(out, in[i:i+6]...)
		}
		i += 5
	}
	return out
}

func toolchainAtLeast(major, minor int) bool {
	v := strings.TrimPrefix(runtime.Version(), "go")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return true // devel builds: assume recent
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return true
	}
	return ma > major || (ma == major && mi >= minor)
}

// selfCheck pins the encoder behaviours the vectors rely on, so a surprise in
// the toolchain fails loudly instead of producing silently different files.
func selfCheck() {
	checks := []struct {
		in   string
		want string
	}{
		{"<>&", `"\u003c\u003e\u0026"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00\x1f\x7f", `"\u0000\u001f` + "\x7f" + `"`},
		{"\xff", `"\ufffd"`},
		{"\ufffd", "\"\xef\xbf\xbd\""},
		{`\u0008`, `"\\u0008"`},
		{"é日本😀/", "\"é日本😀/\""},
	}
	for _, c := range checks {
		got, _ := goJSON(c.in)
		if string(got) != c.want {
			fail("self-check: marshal(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func b64std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
func hexs(b []byte) string   { return hex.EncodeToString(b) }
func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// invalidUTF8 records, for each string input that is not valid UTF-8, the
// raw bytes (base64 std) under a dotted path such as "payload.sub" or
// "caveats.0.tools.1". JSON cannot carry such strings; the vector file holds
// Go's lossy rendering in the ordinary field and the exact bytes here.
type invalidUTF8 map[string]string

func (m invalidUTF8) note(path, s string) {
	if !utf8.ValidString(s) {
		m[path] = b64std([]byte(s))
	}
}

func (m invalidUTF8) orNil() map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func writeVectorFile(path string, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fail("encode %s: %v", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		fail("mkdir: %v", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		fail("write %s: %v", path, err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", path, buf.Len())
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "govectors: "+format+"\n", args...)
	os.Exit(1)
}

// generatorInfo is the common header of both files.
type generatorInfo struct {
	Tool      string `json:"tool"`
	GoVersion string `json:"go_version"`
	Profile   string `json:"json_profile"`
	Note      string `json:"note"`
}

func header() generatorInfo {
	return generatorInfo{
		Tool:      "tools/govectors (go run .)",
		GoVersion: runtime.Version(),
		Profile:   "go1.22+",
		Note: "All canonical bytes, signatures and hashes are those of Go >= 1.22 encoding/json " +
			"(the gateway is built with Go 1.25): U+0008 and U+000C are written as \\b and \\f. " +
			"Where an older toolchain (< 1.22) would write \\u0008 / \\u000c instead, the old bytes " +
			"are given under go_pre_1_22 for information only.",
	}
}
