package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
)

// ---------------------------------------------------------------------------
// Go mirrors of the capability token (COMPATIBILITY.md §4). Field order and tags
// are what makes the canonical bytes; do not reorder.

// Caveat is the NG (v3) caveat. APP (v4) appends more omitempty fields after
// step_up_at; with those unset the bytes are identical, so the same struct
// serves both schemas here.
type Caveat struct {
	T        string   `json:"t"`
	Tools    []string `json:"tools,omitempty"`
	Agent    string   `json:"agent,omitempty"`
	Exp      int64    `json:"exp,omitempty"`
	MaxCalls int64    `json:"max_calls,omitempty"`
	StepUpAt int64    `json:"step_up_at,omitempty"`
}

type payloadV3 struct {
	V       int    `json:"v"`
	JTI     string `json:"jti"`
	RootJTI string `json:"root_jti"`
	Iss     string `json:"iss"`
	Tenant  string `json:"tenant"`
	Sub     string `json:"sub"`
	Iat     int64  `json:"iat"`
	Nbf     int64  `json:"nbf,omitempty"`
}

// payloadV4 adds zone between tenant and sub. The spec does not say zone is
// omitempty; it is a required field for v4 verifiers ("missing zone"), so it
// is modelled as always present.
type payloadV4 struct {
	V       int    `json:"v"`
	JTI     string `json:"jti"`
	RootJTI string `json:"root_jti"`
	Iss     string `json:"iss"`
	Tenant  string `json:"tenant"`
	Zone    string `json:"zone"`
	Sub     string `json:"sub"`
	Iat     int64  `json:"iat"`
	Nbf     int64  `json:"nbf,omitempty"`
}

type tokenV3 struct {
	V       int      `json:"v"`
	JTI     string   `json:"jti"`
	RootJTI string   `json:"root_jti"`
	Iss     string   `json:"iss"`
	Tenant  string   `json:"tenant"`
	Sub     string   `json:"sub"`
	Iat     int64    `json:"iat"`
	Nbf     int64    `json:"nbf,omitempty"`
	Cav     []Caveat `json:"cav,omitempty"`
	Sig     string   `json:"sig"`
}

type tokenV4 struct {
	V       int      `json:"v"`
	JTI     string   `json:"jti"`
	RootJTI string   `json:"root_jti"`
	Iss     string   `json:"iss"`
	Tenant  string   `json:"tenant"`
	Zone    string   `json:"zone"`
	Sub     string   `json:"sub"`
	Iat     int64    `json:"iat"`
	Nbf     int64    `json:"nbf,omitempty"`
	Cav     []Caveat `json:"cav,omitempty"`
	Sig     string   `json:"sig"`
}

// ---------------------------------------------------------------------------
// Vector file shapes

type tokenFile struct {
	Generator        generatorInfo `json:"generator"`
	MasterKeyHex     string        `json:"master_key_hex"`
	MasterKeyB64URL  string        `json:"master_key_b64url"`
	MasterKeyB64Std  string        `json:"master_key_b64std"`
	MasterKeyB64Raw  string        `json:"master_key_b64std_nopad"`
	MasterKeyB64URLP string        `json:"master_key_b64url_padded"`
	Cases            []tokenCase   `json:"cases"`
	DecodeCases      []decodeCase  `json:"decode_cases"`
}

// payloadIn is the raw Go field values of a payload, every field present.
// zone is present only for schema "v4".
type payloadIn struct {
	V       int     `json:"v"`
	JTI     string  `json:"jti"`
	RootJTI string  `json:"root_jti"`
	Iss     string  `json:"iss"`
	Tenant  string  `json:"tenant"`
	Zone    *string `json:"zone,omitempty"`
	Sub     string  `json:"sub"`
	Iat     int64   `json:"iat"`
	Nbf     int64   `json:"nbf"`
}

// caveatIn is the raw Go field values of a caveat, every field present;
// tools is null for a nil slice and [] for an empty non-nil slice.
type caveatIn struct {
	T        string   `json:"t"`
	Tools    []string `json:"tools"`
	Agent    string   `json:"agent"`
	Exp      int64    `json:"exp"`
	MaxCalls int64    `json:"max_calls"`
	StepUpAt int64    `json:"step_up_at"`
}

type caveatStep struct {
	Index         int    `json:"index"`
	CanonicalJSON string `json:"canonical_json"`
	CanonicalB64  string `json:"canonical_b64"`
	KeyHex        string `json:"key_hex"`
	SigHex        string `json:"sig_hex"`
	WireAfter     string `json:"wire_after"`
}

type legacyToken struct {
	PayloadJSON string   `json:"payload_json"`
	CaveatsJSON []string `json:"caveats_json"`
	TokenJSON   string   `json:"token_json"`
	Note        string   `json:"note"`
}

type tokenCase struct {
	Name         string            `json:"name"`
	Description  string            `json:"description"`
	Schema       string            `json:"schema"`
	MasterKeyHex string            `json:"master_key_hex"`
	Payload      payloadIn         `json:"payload"`
	Caveats      []caveatIn        `json:"caveats"`
	InvalidUTF8  map[string]string `json:"invalid_utf8_b64,omitempty"`
	PayloadJSON  string            `json:"payload_json"`
	PayloadB64   string            `json:"payload_b64"`
	Sig0Hex      string            `json:"sig0_hex"`
	WireNoCav    string            `json:"wire_no_caveats"`
	CaveatSteps  []caveatStep      `json:"caveat_steps"`
	SigsHex      []string          `json:"sigs_hex"`
	FinalSigHex  string            `json:"final_sig_hex"`
	SigB64URL    string            `json:"sig_b64url"`
	TokenJSON    string            `json:"token_json"`
	TokenB64     string            `json:"token_b64"`
	Wire         string            `json:"wire"`
	GoPre122     *legacyToken      `json:"go_pre_1_22,omitempty"`
}

// ---------------------------------------------------------------------------
// Inputs

type tokenSpec struct {
	name, desc string
	schema     string // "v3" | "v4"
	key        []byte // nil: the file's master key
	p          payloadFields
	cav        []Caveat
}

type payloadFields struct {
	V                               int
	JTI, RootJTI, Iss, Tenant, Zone string
	Sub                             string
	Iat, Nbf                        int64
}

func masterKey() []byte {
	k := sha256.Sum256([]byte("intentgate govectors master key #1"))
	return k[:]
}

// makeJTI builds a gateway-shaped jti: 4-byte big-endian unix seconds then
// 12 bytes (here a fixed pattern instead of random), base64url without pad.
func makeJTI(sec uint32, seed byte) string {
	b := make([]byte, 16)
	binary.BigEndian.PutUint32(b, sec)
	for i := 4; i < 16; i++ {
		b[i] = seed*31 + byte(i*17)
	}
	return b64url(b)
}

const iat0 = 1778753472 // 2026-05-14T10:11:12Z

func basePayload(v int) payloadFields {
	j := makeJTI(iat0, 1)
	return payloadFields{V: v, JTI: j, RootJTI: j, Iss: "intentgate", Tenant: "acme", Sub: "agent-1", Iat: iat0}
}

func tokenSpecs() []tokenSpec {
	with := func(p payloadFields, f func(*payloadFields)) payloadFields { f(&p); return p }
	v3 := basePayload(3)
	v4 := with(basePayload(4), func(p *payloadFields) { p.Zone = "payments" })
	child := makeJTI(iat0+60, 2)

	allControls := ""
	for c := 0; c < 0x20; c++ {
		allControls += string(rune(c))
	}
	allControls += "\x7f"

	return []tokenSpec{
		{name: "v3_minimal", desc: "v3 payload, no caveats, nbf 0 omitted, cav omitted from token JSON", schema: "v3", p: v3},
		{name: "v3_nbf_set", desc: "nbf non-zero is emitted after iat", schema: "v3",
			p: with(v3, func(p *payloadFields) { p.Nbf = iat0 + 30 })},
		{name: "v3_child_jti", desc: "root_jti differs from jti", schema: "v3",
			p: with(v3, func(p *payloadFields) { p.JTI = child })},
		{name: "v3_tool_allow", desc: "one tool_allow caveat", schema: "v3", p: v3,
			cav: []Caveat{{T: "tool_allow", Tools: []string{"read_file", "search"}}}},
		{name: "v3_full_chain", desc: "every NG caveat type in one chain, each field of the caveat struct used", schema: "v3", p: v3,
			cav: []Caveat{
				{T: "tool_allow", Tools: []string{"read_file", "write_file", "search"}},
				{T: "tool_deny", Tools: []string{"write_file"}},
				{T: "exp", Exp: iat0 + 3600},
				{T: "agent_lock", Agent: "agent-1"},
				{T: "max_calls", MaxCalls: 100},
				{T: "step_up", StepUpAt: 5},
			}},
		{name: "v3_caveat_all_fields", desc: "a single caveat with every field set (order t,tools,agent,exp,max_calls,step_up_at)", schema: "v3", p: v3,
			cav: []Caveat{{T: "custom", Tools: []string{"a", "b"}, Agent: "ag", Exp: 1, MaxCalls: 2, StepUpAt: 3}}},
		{name: "v3_attenuation_10", desc: "ten caveats appended one by one; wire_after of step i is the token after attenuation i", schema: "v3", p: v3,
			cav: func() []Caveat {
				var out []Caveat
				for i := 0; i < 10; i++ {
					out = append(out, Caveat{T: "max_calls", MaxCalls: int64(100 - i*10)})
				}
				return out
			}()},
		{name: "v3_html_chars", desc: "<, > and & are escaped as \\u003c \\u003e \\u0026 everywhere, including tools", schema: "v3",
			p:   with(v3, func(p *payloadFields) { p.Sub = "a<b>&c"; p.Iss = "<script>alert(1)</script>" }),
			cav: []Caveat{{T: "tool_allow", Tools: []string{"<tool>", "a&b", "x>y"}, Agent: "&amp;"}}},
		{name: "v3_line_separators", desc: "U+2028 and U+2029 are always escaped (\\u2028, \\u2029)", schema: "v3",
			p:   with(v3, func(p *payloadFields) { p.Iss = "line\u2028sep\u2029para"; p.Sub = "\u2028" }),
			cav: []Caveat{{T: "agent_lock", Agent: "x\u2029y"}}},
		{name: "v3_non_ascii", desc: "other non-ASCII is written as raw UTF-8 (no \\u escapes), including astral-plane emoji and U+FFFD itself", schema: "v3",
			p: with(v3, func(p *payloadFields) {
				p.Iss = "émetteur"
				p.Tenant = "日本"
				p.Sub = "agent-😀"
			}),
			cav: []Caveat{{T: "tool_allow", Tools: []string{"café", "日本語", "😀🎉", "\ufffd", "\u00a0nbsp", "\ufeffbom", "\u200bzwsp", "\U0010ffff"}}}},
		{name: "v3_control_chars", desc: "all C0 controls and DEL: \\b \\f \\n \\r \\t short forms, others \\u00XX lowercase hex, DEL 0x7f raw", schema: "v3",
			p:   with(v3, func(p *payloadFields) { p.Sub = allControls }),
			cav: []Caveat{{T: "tool_allow", Tools: []string{"\x00", "\x1f", "\t", "\n", "\r", "\b", "\f", "\x7f", "\x0b", "a\x00b"}}}},
		{name: "v3_quotes_backslashes", desc: "quote and backslash escaped; '/' not escaped; literal backslash-u text stays literal", schema: "v3",
			p: with(v3, func(p *payloadFields) {
				p.Sub = `say "hi" \ bye`
				p.Iss = `C:\path\to\file/with/slashes`
				p.Tenant = `\u0008\u003c\n`
			}),
			cav: []Caveat{{T: "tool_allow", Tools: []string{`"`, `\`, `\\`, `\"`, "'"}}}},
		{name: "v3_invalid_utf8", desc: "invalid UTF-8 bytes are each replaced by the 6-char escape \\ufffd (one per invalid byte, Go's DecodeRune rule); valid U+FFFD stays raw", schema: "v3",
			p: with(v3, func(p *payloadFields) {
				p.Sub = "a\xffb"
				p.Iss = "trunc\xe6\x97"      // truncated 日: two replacements in Go (Rust from_utf8_lossy gives one)
				p.Tenant = "sur\xed\xa0\x80" // UTF-8 encoded surrogate: three replacements
			}),
			cav: []Caveat{{T: "tool_allow", Tools: []string{"\xc0\xaf", "\xf4\x90\x80\x80", "\xf0\x9f\x98", "ok\ufffd", "\x80"}, Agent: "\xfe\xfe"}}},
		{name: "v3_empty_strings", desc: "payload strings are not omitempty (\"\" is written); caveat t is always written even empty; empty agent omitted", schema: "v3",
			p:   payloadFields{V: 3},
			cav: []Caveat{{T: ""}, {T: "agent_lock", Agent: ""}}},
		{name: "v3_zero_ints", desc: "iat 0 and v 0 are written (not omitempty); nbf 0 and caveat exp/max_calls/step_up_at 0 are omitted", schema: "v3",
			p:   with(v3, func(p *payloadFields) { p.V = 0; p.Iat = 0; p.Nbf = 0 }),
			cav: []Caveat{{T: "exp", Exp: 0}, {T: "max_calls", MaxCalls: 0}, {T: "step_up", StepUpAt: 0}}},
		{name: "v3_negative_ints", desc: "negative numbers are not 'empty' and are written with a leading minus", schema: "v3",
			p:   with(v3, func(p *payloadFields) { p.V = -3; p.Iat = -1; p.Nbf = -1 }),
			cav: []Caveat{{T: "exp", Exp: -5}, {T: "max_calls", MaxCalls: -1}, {T: "step_up", StepUpAt: -1}}},
		{name: "v3_large_ints", desc: "int64 extremes and values above 2^53 are written exactly (read them as i64, never f64)", schema: "v3",
			p: with(v3, func(p *payloadFields) { p.Iat = math.MaxInt64; p.Nbf = math.MinInt64 }),
			cav: []Caveat{
				{T: "exp", Exp: 9007199254740993},
				{T: "max_calls", MaxCalls: math.MaxInt64},
				{T: "step_up", StepUpAt: math.MinInt64},
			}},
		{name: "v3_tools_nil_vs_empty", desc: "nil and empty tools lists are both omitted; a list holding one empty string is written", schema: "v3", p: v3,
			cav: []Caveat{{T: "tool_allow", Tools: nil}, {T: "tool_allow", Tools: []string{}}, {T: "tool_allow", Tools: []string{""}}}},
		{name: "v3_empty_cav_slice", desc: "an empty non-nil caveat list is omitted from the token JSON exactly like nil", schema: "v3", p: v3,
			cav: []Caveat{}},
		{name: "v3_unknown_caveat_type", desc: "caveat type strings are free text to the encoder", schema: "v3", p: v3,
			cav: []Caveat{{T: "future_thing", Tools: []string{"x"}}}},
		{name: "v3_min_key_16", desc: "a 16-byte master key (the minimum the gateway accepts)", schema: "v3",
			key: []byte("0123456789abcdef"), p: v3,
			cav: []Caveat{{T: "tool_allow", Tools: []string{"read_file"}}}},
		{name: "v4_zone", desc: "v4 payload: zone between tenant and sub", schema: "v4", p: v4,
			cav: []Caveat{{T: "tool_allow", Tools: []string{"pay.*"}}}},
		{name: "v4_empty_zone", desc: "v4 zone modelled as not omitempty: empty zone is written as \"zone\":\"\"", schema: "v4",
			p: with(v4, func(p *payloadFields) { p.Zone = "" })},
		{name: "v4_tricky_zone", desc: "v4 zone with characters that need escaping", schema: "v4",
			p:   with(v4, func(p *payloadFields) { p.Zone = "eu<west>&\u2028\b\""; p.Nbf = iat0 }),
			cav: []Caveat{{T: "exp", Exp: iat0 + 60}, {T: "agent_lock", Agent: "agent-1"}}},
	}
}

// ---------------------------------------------------------------------------
// Building

func payloadValue(schema string, p payloadFields) any {
	switch schema {
	case "v3":
		return payloadV3{V: p.V, JTI: p.JTI, RootJTI: p.RootJTI, Iss: p.Iss, Tenant: p.Tenant, Sub: p.Sub, Iat: p.Iat, Nbf: p.Nbf}
	case "v4":
		return payloadV4{V: p.V, JTI: p.JTI, RootJTI: p.RootJTI, Iss: p.Iss, Tenant: p.Tenant, Zone: p.Zone, Sub: p.Sub, Iat: p.Iat, Nbf: p.Nbf}
	}
	fail("unknown schema %q", schema)
	return nil
}

func tokenValue(schema string, p payloadFields, cav []Caveat, sig []byte) any {
	s := b64url(sig)
	switch schema {
	case "v3":
		return tokenV3{V: p.V, JTI: p.JTI, RootJTI: p.RootJTI, Iss: p.Iss, Tenant: p.Tenant, Sub: p.Sub, Iat: p.Iat, Nbf: p.Nbf, Cav: cav, Sig: s}
	case "v4":
		return tokenV4{V: p.V, JTI: p.JTI, RootJTI: p.RootJTI, Iss: p.Iss, Tenant: p.Tenant, Zone: p.Zone, Sub: p.Sub, Iat: p.Iat, Nbf: p.Nbf, Cav: cav, Sig: s}
	}
	fail("unknown schema %q", schema)
	return nil
}

func wireOf(schema string, p payloadFields, cav []Caveat, sig []byte) (wire string, modern, raw []byte) {
	modern, raw = goJSON(tokenValue(schema, p, cav, sig))
	return b64url(modern), modern, raw
}

func toPayloadIn(schema string, p payloadFields, bad invalidUTF8) payloadIn {
	in := payloadIn{V: p.V, JTI: p.JTI, RootJTI: p.RootJTI, Iss: p.Iss, Tenant: p.Tenant, Sub: p.Sub, Iat: p.Iat, Nbf: p.Nbf}
	if schema == "v4" {
		z := p.Zone
		in.Zone = &z
		bad.note("payload.zone", p.Zone)
	}
	bad.note("payload.jti", p.JTI)
	bad.note("payload.root_jti", p.RootJTI)
	bad.note("payload.iss", p.Iss)
	bad.note("payload.tenant", p.Tenant)
	bad.note("payload.sub", p.Sub)
	return in
}

func toCaveatsIn(cav []Caveat, bad invalidUTF8) []caveatIn {
	out := []caveatIn{}
	for i, c := range cav {
		out = append(out, caveatIn{T: c.T, Tools: c.Tools, Agent: c.Agent, Exp: c.Exp, MaxCalls: c.MaxCalls, StepUpAt: c.StepUpAt})
		bad.note(fmtPath("caveats", i, "t"), c.T)
		bad.note(fmtPath("caveats", i, "agent"), c.Agent)
		for j, t := range c.Tools {
			bad.note(fmtPath("caveats", i, "tools")+"."+itoa(j), t)
		}
	}
	return out
}

func fmtPath(prefix string, i int, field string) string { return prefix + "." + itoa(i) + "." + field }
func itoa(i int) string                                 { return jsonNum(int64(i)) }
func jsonNum(i int64) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func buildTokenCase(s tokenSpec, defKey []byte) tokenCase {
	key := s.key
	if key == nil {
		key = defKey
	}
	bad := invalidUTF8{}
	tc := tokenCase{
		Name:         s.name,
		Description:  s.desc,
		Schema:       s.schema,
		MasterKeyHex: hexs(key),
		Payload:      toPayloadIn(s.schema, s.p, bad),
		Caveats:      toCaveatsIn(s.cav, bad),
	}
	tc.InvalidUTF8 = bad.orNil()

	pj, pjRaw := goJSON(payloadValue(s.schema, s.p))
	tc.PayloadJSON = string(pj)
	tc.PayloadB64 = b64std(pj)
	sig := hmacSHA256(key, pj)
	tc.Sig0Hex = hexs(sig)
	tc.SigsHex = []string{hexs(sig)}
	tc.WireNoCav, _, _ = wireOf(s.schema, s.p, nil, sig)
	tc.CaveatSteps = []caveatStep{}

	differs := string(pj) != string(pjRaw)
	var legacyCav []string
	for i, c := range s.cav {
		cj, cjRaw := goJSON(c)
		if string(cj) != string(cjRaw) {
			differs = true
		}
		legacyCav = append(legacyCav, string(cjRaw))
		next := hmacSHA256(sig, cj)
		after, _, _ := wireOf(s.schema, s.p, s.cav[:i+1], next)
		tc.CaveatSteps = append(tc.CaveatSteps, caveatStep{
			Index:         i,
			CanonicalJSON: string(cj),
			CanonicalB64:  b64std(cj),
			KeyHex:        hexs(sig),
			SigHex:        hexs(next),
			WireAfter:     after,
		})
		tc.SigsHex = append(tc.SigsHex, hexs(next))
		sig = next
	}
	tc.FinalSigHex = hexs(sig)
	tc.SigB64URL = b64url(sig)
	wire, tj, tjRaw := wireOf(s.schema, s.p, s.cav, sig)
	tc.TokenJSON = string(tj)
	tc.TokenB64 = b64std(tj)
	tc.Wire = wire
	if string(tj) != string(tjRaw) {
		differs = true
	}
	if differs {
		if legacyCav == nil {
			legacyCav = []string{}
		}
		tc.GoPre122 = &legacyToken{
			PayloadJSON: string(pjRaw),
			CaveatsJSON: legacyCav,
			TokenJSON:   string(tjRaw),
			Note:        "what encoding/json before Go 1.22 writes (\\u0008/\\u000c); signatures above are over the Go 1.22+ bytes",
		}
	}
	return tc
}

func buildTokenVectors() tokenFile {
	key := masterKey()
	f := tokenFile{
		Generator:        header(),
		MasterKeyHex:     hexs(key),
		MasterKeyB64URL:  base64.RawURLEncoding.EncodeToString(key),
		MasterKeyB64Std:  base64.StdEncoding.EncodeToString(key),
		MasterKeyB64Raw:  base64.RawStdEncoding.EncodeToString(key),
		MasterKeyB64URLP: base64.URLEncoding.EncodeToString(key),
	}
	for _, s := range tokenSpecs() {
		f.Cases = append(f.Cases, buildTokenCase(s, key))
	}
	f.DecodeCases = buildDecodeCases(key)
	return f
}

// ---------------------------------------------------------------------------
// Decode cases: a verifier re-marshals the *parsed* structs (COMPATIBILITY.md §4.2),
// so what Go's json.Unmarshal does to the wire JSON decides whether a token
// verifies. Each case is arbitrary token JSON bytes; expected results come
// from json.Unmarshal into the v3 token struct, re-marshal, HMAC chain.

type decodeCase struct {
	Name         string     `json:"name"`
	Description  string     `json:"description"`
	TokenJSONB64 string     `json:"token_json_b64"`
	Wire         string     `json:"wire"`
	DecodeOK     bool       `json:"decode_ok"`
	GoError      string     `json:"go_error,omitempty"`
	Payload      *payloadIn `json:"payload,omitempty"`
	Caveats      []caveatIn `json:"caveats,omitempty"`
	Sig          string     `json:"sig,omitempty"`
	PayloadJSON  string     `json:"payload_json,omitempty"`
	CaveatsJSON  []string   `json:"caveats_json,omitempty"`
	SigValid     bool       `json:"sig_valid"`
}

// signV3 returns a correctly signed v3 token (as Go struct) for fields/caveats.
func signV3(key []byte, p payloadFields, cav []Caveat) tokenV3 {
	pj, _ := goJSON(payloadValue("v3", p))
	sig := hmacSHA256(key, pj)
	for _, c := range cav {
		cj, _ := goJSON(c)
		sig = hmacSHA256(sig, cj)
	}
	return tokenValue("v3", p, cav, sig).(tokenV3)
}

func buildDecodeCases(key []byte) []decodeCase {
	p := basePayload(3)
	p.Sub = "agent-é<1>"
	cav := []Caveat{{T: "tool_allow", Tools: []string{"read_file", "a&b", "x/y"}}}
	good := signV3(key, p, cav)
	goodJSON, _ := goJSON(good)
	sig := good.Sig

	// Same token but with a sub that Go's decoder will coerce: signer's
	// string holds raw invalid UTF-8 -> canonical has the escape \ufffd.
	pBad := p
	pBad.Sub = "bad\xffsub"
	badTok := signV3(key, pBad, cav)
	badJSON, _ := goJSON(badTok)

	// Signed over the coerced form (raw U+FFFD), so a wire token holding
	// the invalid byte verifies after decode.
	pRepl := p
	pRepl.Sub = "bad\ufffdsub"
	replTok := signV3(key, pRepl, cav)

	pEmoji := p
	pEmoji.Sub = "agent-😀"
	emojiTok := signV3(key, pEmoji, cav)

	type raw = string
	common := func(subJSON string, sig string) raw {
		return `{"v":3,"jti":"` + p.JTI + `","root_jti":"` + p.RootJTI + `","iss":"intentgate","tenant":"acme","sub":` + subJSON +
			`,"iat":1778753472,"cav":[{"t":"tool_allow","tools":["read_file","a\u0026b","x\/y"]}],"sig":"` + sig + `"}`
	}

	inputs := []struct {
		name, desc string
		json       raw
	}{
		{"canonical", "the exact Go-marshalled token JSON", string(goodJSON)},
		{"reordered_pretty", "keys in another order, whitespace and newlines: parsed then re-marshalled, still valid",
			"{\n  \"sig\": \"" + sig + "\",\n  \"cav\": [ { \"tools\": [\"read_file\", \"a&b\", \"x/y\"], \"t\": \"tool_allow\" } ],\n  \"sub\": \"agent-é<1>\", \"iat\": 1778753472,\n  \"tenant\": \"acme\", \"iss\": \"intentgate\", \"root_jti\": \"" + p.RootJTI + "\", \"jti\": \"" + p.JTI + "\", \"v\": 3\n}"},
		{"case_insensitive_keys", "Go matches struct keys case-insensitively (ASCII): SUB, Jti, CAV, T, TOOLS all bind",
			`{"V":3,"JTI":"` + p.JTI + `","Root_Jti":"` + p.RootJTI + `","ISS":"intentgate","Tenant":"acme","SUB":"agent-\u00e9\u003c1\u003e","IAT":1778753472,"CAV":[{"T":"tool_allow","TOOLS":["read_file","a&b","x/y"]}],"SIG":"` + sig + `"}`},
		{"unknown_keys", "unknown keys at both levels are ignored",
			`{"x":1,"v":3,"jti":"` + p.JTI + `","root_jti":"` + p.RootJTI + `","iss":"intentgate","tenant":"acme","sub":"agent-é<1>","iat":1778753472,"zone":"ignored-in-v3","cav":[{"t":"tool_allow","tools":["read_file","a&b","x/y"],"future":[1,2]}],"sig":"` + sig + `","extra":{"a":null}}`},
		{"escape_variants", "\\u00E9, \\u003C (upper-case hex), \\u0026 and \\/ decode to the same strings as the raw forms: valid",
			common(`"agent-\u00E9\u003C1\u003e"`, sig)},
		{"duplicate_key_last_wins", "duplicate sub: the last value wins (valid here)",
			`{"v":3,"jti":"` + p.JTI + `","root_jti":"` + p.RootJTI + `","sub":"evil","iss":"intentgate","tenant":"acme","sub":"agent-é<1>","iat":1778753472,"cav":[{"t":"tool_allow","tools":["read_file","a&b","x/y"]}],"sig":"` + sig + `"}`},
		{"duplicate_key_first_real", "duplicate sub with the genuine value first: last wins -> signature mismatch",
			`{"v":3,"jti":"` + p.JTI + `","root_jti":"` + p.RootJTI + `","sub":"agent-é<1>","iss":"intentgate","tenant":"acme","sub":"evil","iat":1778753472,"cav":[{"t":"tool_allow","tools":["read_file","a&b","x/y"]}],"sig":"` + sig + `"}`},
		{"explicit_zero_and_null_fields", "explicit \"nbf\":0, caveat \"agent\":\"\", \"exp\":0, \"max_calls\":null are all omitted again on re-marshal: valid",
			`{"v":3,"jti":"` + p.JTI + `","root_jti":"` + p.RootJTI + `","iss":"intentgate","tenant":"acme","sub":"agent-é<1>","iat":1778753472,"nbf":0,"cav":[{"t":"tool_allow","tools":["read_file","a&b","x/y"],"agent":"","exp":0,"max_calls":null}],"sig":"` + sig + `"}`},
		{"null_sub", "\"sub\":null leaves the field at its zero value \"\" -> payload bytes change -> mismatch",
			common(`null`, sig)},
		{"invalid_utf8_in_wire_signed_over_fffd", "raw byte 0xff inside a JSON string decodes to U+FFFD; token was signed over sub \"bad\\uFFFDsub\" (raw U+FFFD), so it verifies",
			common("\"bad\xffsub\"", replTok.Sig)},
		{"minted_with_invalid_utf8", "a token minted from a Go string holding invalid UTF-8 signs over the escape \\ufffd, but after decode the value holds U+FFFD which re-marshals as raw EF BF BD: such a token can never verify",
			string(badJSON)},
		{"surrogate_pair_escape", "\\ud83d\\ude00 decodes to U+1F600, re-marshalled as raw 4-byte UTF-8: valid",
			common(`"agent-\ud83d\ude00"`, emojiTok.Sig)},
		{"lone_surrogate_escape", "a lone \\ud83d decodes to U+FFFD: signed over raw-U+FFFD form -> valid",
			common(`"bad\ud83dsub"`, replTok.Sig)},
		{"float_iat", "\"iat\":1778753472.0 is not an int64: decode error", `{"v":3,"jti":"x","root_jti":"x","iss":"","tenant":"t","sub":"s","iat":1778753472.0,"sig":"` + sig + `"}`},
		{"string_iat", "\"iat\":\"1778753472\" (string) is a decode error", `{"v":3,"jti":"x","root_jti":"x","iss":"","tenant":"t","sub":"s","iat":"1778753472","sig":"` + sig + `"}`},
		{"exponent_iat", "\"iat\":1.778753472e9 is a decode error for int64", `{"v":3,"jti":"x","root_jti":"x","iss":"","tenant":"t","sub":"s","iat":1.778753472e9,"sig":"` + sig + `"}`},
	}

	var out []decodeCase
	for _, in := range inputs {
		b := []byte(in.json)
		dc := decodeCase{Name: in.name, Description: in.desc, TokenJSONB64: b64std(b), Wire: b64url(b)}
		var t tokenV3
		if err := json.Unmarshal(b, &t); err != nil {
			dc.GoError = err.Error()
			out = append(out, dc)
			continue
		}
		dc.DecodeOK = true
		pf := payloadFields{V: t.V, JTI: t.JTI, RootJTI: t.RootJTI, Iss: t.Iss, Tenant: t.Tenant, Sub: t.Sub, Iat: t.Iat, Nbf: t.Nbf}
		pin := toPayloadIn("v3", pf, invalidUTF8{})
		dc.Payload = &pin
		dc.Caveats = toCaveatsIn(t.Cav, invalidUTF8{})
		dc.Sig = t.Sig
		pj, _ := goJSON(payloadValue("v3", pf))
		dc.PayloadJSON = string(pj)
		s := hmacSHA256(key, pj)
		dc.CaveatsJSON = []string{}
		for _, c := range t.Cav {
			cj, _ := goJSON(c)
			dc.CaveatsJSON = append(dc.CaveatsJSON, string(cj))
			s = hmacSHA256(s, cj)
		}
		got, err := base64.RawURLEncoding.Strict().DecodeString(t.Sig)
		dc.SigValid = err == nil && hmac.Equal(got, s)
		out = append(out, dc)
	}
	return out
}
