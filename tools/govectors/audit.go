package main

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"time"
)

// auditCanonical mirrors the hashed subset of an audit event (COMPATIBILITY.md §8.2).
// Field order = JSON order; do not reorder.
type auditCanonical struct {
	TS                    string   `json:"ts"`
	Event                 string   `json:"event"`
	SchemaVersion         string   `json:"schema_version"`
	Decision              string   `json:"decision"`
	Check                 string   `json:"check,omitempty"`
	Reason                string   `json:"reason,omitempty"`
	Tenant                string   `json:"tenant,omitempty"`
	AgentID               string   `json:"agent_id,omitempty"`
	SessionID             string   `json:"session_id,omitempty"`
	Tool                  string   `json:"tool"`
	ArgKeys               []string `json:"arg_keys,omitempty"`
	CapabilityTokenID     string   `json:"capability_token_id,omitempty"`
	RootCapabilityTokenID string   `json:"root_capability_token_id,omitempty"`
	CaveatCount           int      `json:"caveat_count,omitempty"`
	PendingID             string   `json:"pending_id,omitempty"`
	DecidedBy             string   `json:"decided_by,omitempty"`
	IntentSummary         string   `json:"intent_summary,omitempty"`
	LatencyMS             int64    `json:"latency_ms"`
	RemoteIP              string   `json:"remote_ip,omitempty"`
	UpstreamStatus        int      `json:"upstream_status,omitempty"`
	RequiresStepUp        bool     `json:"requires_step_up,omitempty"`
	ElevationID           string   `json:"elevation_id,omitempty"`
}

// auditIn is the same data with every field always present (raw Go values),
// used as the test input in the vector file. arg_keys: null = nil slice,
// [] = empty non-nil slice. ts here is the normalised value that is hashed.
type auditIn struct {
	TS                    string   `json:"ts"`
	Event                 string   `json:"event"`
	SchemaVersion         string   `json:"schema_version"`
	Decision              string   `json:"decision"`
	Check                 string   `json:"check"`
	Reason                string   `json:"reason"`
	Tenant                string   `json:"tenant"`
	AgentID               string   `json:"agent_id"`
	SessionID             string   `json:"session_id"`
	Tool                  string   `json:"tool"`
	ArgKeys               []string `json:"arg_keys"`
	CapabilityTokenID     string   `json:"capability_token_id"`
	RootCapabilityTokenID string   `json:"root_capability_token_id"`
	CaveatCount           int      `json:"caveat_count"`
	PendingID             string   `json:"pending_id"`
	DecidedBy             string   `json:"decided_by"`
	IntentSummary         string   `json:"intent_summary"`
	LatencyMS             int64    `json:"latency_ms"`
	RemoteIP              string   `json:"remote_ip"`
	UpstreamStatus        int      `json:"upstream_status"`
	RequiresStepUp        bool     `json:"requires_step_up"`
	ElevationID           string   `json:"elevation_id"`
}

type auditFile struct {
	Generator      generatorInfo `json:"generator"`
	TimestampCases []tsCase      `json:"timestamp_cases"`
	Events         []auditCase   `json:"events"`
	Chains         []auditChain  `json:"chains"`
}

type tsCase struct {
	Description string `json:"description"`
	Input       string `json:"input"`
	Normalized  string `json:"normalized"`
}

type legacyAudit struct {
	CanonicalJSON string `json:"canonical_json"`
	Note          string `json:"note"`
}

type auditCase struct {
	Name          string            `json:"name"`
	Description   string            `json:"description,omitempty"`
	TSInput       string            `json:"ts_input"`
	Input         auditIn           `json:"input"`
	InvalidUTF8   map[string]string `json:"invalid_utf8_b64,omitempty"`
	CanonicalJSON string            `json:"canonical_json"`
	CanonicalB64  string            `json:"canonical_b64"`
	ChainKey      string            `json:"chain_key"`
	PrevHash      string            `json:"prev_hash"`
	Hash          string            `json:"hash"`
	GoPre122      *legacyAudit      `json:"go_pre_1_22,omitempty"`
}

type auditChain struct {
	Name     string      `json:"name"`
	ChainKey string      `json:"chain_key"`
	Note     string      `json:"note"`
	Events   []auditCase `json:"events"`
	HeadHash string      `json:"head_hash"`
}

// normalizeTS is the Postgres store's insert-time normalisation: parse,
// convert to UTC, truncate to microseconds, format RFC3339Nano (which trims
// trailing zeros of the fraction and drops the dot when it is all zeros).
func normalizeTS(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		fail("parse ts %q: %v", s, err)
	}
	return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

func chainKey(tenant string) string {
	if tenant == "" {
		return "default"
	}
	return tenant
}

func computeHash(prev string, canonical []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(canonical)
	return hex.EncodeToString(h.Sum(nil))
}

// auditSpec: e.TS holds the *input* timestamp; it is normalised before
// hashing.
type auditSpec struct {
	name, desc string
	e          auditCanonical
}

func buildAuditCase(s auditSpec, prev string) auditCase {
	e := s.e
	tsIn := e.TS
	e.TS = normalizeTS(tsIn)
	bad := invalidUTF8{}
	for path, v := range map[string]string{
		"input.ts": e.TS, "input.event": e.Event, "input.schema_version": e.SchemaVersion,
		"input.decision": e.Decision, "input.check": e.Check, "input.reason": e.Reason,
		"input.tenant": e.Tenant, "input.agent_id": e.AgentID, "input.session_id": e.SessionID,
		"input.tool": e.Tool, "input.capability_token_id": e.CapabilityTokenID,
		"input.root_capability_token_id": e.RootCapabilityTokenID, "input.pending_id": e.PendingID,
		"input.decided_by": e.DecidedBy, "input.intent_summary": e.IntentSummary,
		"input.remote_ip": e.RemoteIP, "input.elevation_id": e.ElevationID,
	} {
		bad.note(path, v)
	}
	for i, k := range e.ArgKeys {
		bad.note("input.arg_keys."+itoa(i), k)
	}
	canon, raw := goJSON(e)
	c := auditCase{
		Name:        s.name,
		Description: s.desc,
		TSInput:     tsIn,
		Input: auditIn{
			TS: e.TS, Event: e.Event, SchemaVersion: e.SchemaVersion, Decision: e.Decision,
			Check: e.Check, Reason: e.Reason, Tenant: e.Tenant, AgentID: e.AgentID,
			SessionID: e.SessionID, Tool: e.Tool, ArgKeys: e.ArgKeys,
			CapabilityTokenID: e.CapabilityTokenID, RootCapabilityTokenID: e.RootCapabilityTokenID,
			CaveatCount: e.CaveatCount, PendingID: e.PendingID, DecidedBy: e.DecidedBy,
			IntentSummary: e.IntentSummary, LatencyMS: e.LatencyMS, RemoteIP: e.RemoteIP,
			UpstreamStatus: e.UpstreamStatus, RequiresStepUp: e.RequiresStepUp, ElevationID: e.ElevationID,
		},
		InvalidUTF8:   bad.orNil(),
		CanonicalJSON: string(canon),
		CanonicalB64:  b64std(canon),
		ChainKey:      chainKey(e.Tenant),
		PrevHash:      prev,
		Hash:          computeHash(prev, canon),
	}
	if string(canon) != string(raw) {
		c.GoPre122 = &legacyAudit{CanonicalJSON: string(raw), Note: "pre-Go-1.22 bytes (\\u0008/\\u000c); hash above is over the Go 1.22+ bytes"}
	}
	return c
}

func tsInputs() []tsCase {
	return []tsCase{
		{"nanoseconds truncated (not rounded) to microseconds", "2026-05-14T10:11:12.123456789Z", ""},
		{"no fraction stays without fraction", "2026-05-14T10:11:12Z", ""},
		{"all-zero fraction is dropped entirely", "2026-05-14T10:11:12.000000000Z", ""},
		{"trailing zeros trimmed: .120000 -> .12", "2026-05-14T10:11:12.120000Z", ""},
		{"trailing zeros trimmed: .100000001 -> .1", "2026-05-14T10:11:12.100000001Z", ""},
		{"sub-microsecond fraction truncates to zero -> no fraction", "2026-05-14T10:11:12.000000999Z", ""},
		{"one microsecond", "2026-05-14T10:11:12.000001Z", ""},
		{"single digit fraction", "2026-05-14T10:11:12.5Z", ""},
		{"milliseconds", "2026-05-14T10:11:12.123Z", ""},
		{"leading zeros kept: .010 -> .01", "2026-05-14T10:11:12.010Z", ""},
		{"exactly six digits unchanged", "2026-05-14T10:11:12.654321Z", ""},
		{"positive offset converted to UTC", "2026-05-14T12:11:12.123456789+02:00", ""},
		{"negative half-hour offset converted to UTC", "2026-05-13T23:30:00.999999999-05:30", ""},
		{"offset crossing midnight backwards", "2026-05-14T00:30:00+01:00", ""},
		{"+00:00 becomes Z", "2026-05-14T10:11:12.5+00:00", ""},
		{"truncation never carries into the next second/year", "2026-12-31T23:59:59.9999999Z", ""},
		{"leap day", "2028-02-29T23:59:59.000000500Z", ""},
		{"before 1970", "1969-07-20T20:17:40.123456789Z", ""},
	}
}

func buildAuditVectors() auditFile {
	f := auditFile{Generator: header()}
	for _, c := range tsInputs() {
		c.Normalized = normalizeTS(c.Input)
		f.TimestampCases = append(f.TimestampCases, c)
	}

	base := auditCanonical{TS: "2026-05-14T10:11:12.123456789Z", Event: "intentgate.tool_call", SchemaVersion: "6", Decision: "allow", Tool: "read_file"}
	with := func(f func(*auditCanonical)) auditCanonical { e := base; f(&e); return e }
	jti := makeJTI(iat0, 1)
	child := makeJTI(iat0+60, 2)

	specs := []auditSpec{
		{"minimal_allow", "only the always-present fields (ts, event, schema_version, decision, tool, latency_ms=0); empty tenant -> chain key default", base},
		{"block_capability", "capability block with token ids and caveat count", with(func(e *auditCanonical) {
			e.Decision = "block"
			e.Check = "capability"
			e.Reason = "caveat 0 (tool_allow): tool \"delete_all\" not in allow list"
			e.Tenant = "acme"
			e.AgentID = "agent-1"
			e.Tool = "delete_all"
			e.ArgKeys = []string{"path", "recursive"}
			e.CapabilityTokenID = child
			e.RootCapabilityTokenID = jti
			e.CaveatCount = 2
			e.LatencyMS = 3
			e.RemoteIP = "10.0.0.7:52814"
		})},
		{"every_field_set", "every canonical field non-empty", with(func(e *auditCanonical) {
			e.Decision = "allow"
			e.Check = "upstream"
			e.Reason = "approved by reviewer"
			e.Tenant = "acme"
			e.AgentID = "agent-1"
			e.SessionID = "sess-42"
			e.Tool = "transfer_funds"
			e.ArgKeys = []string{"amount", "currency", "to"}
			e.CapabilityTokenID = child
			e.RootCapabilityTokenID = jti
			e.CaveatCount = 3
			e.PendingID = "pend-0001"
			e.DecidedBy = "alice@example.com"
			e.IntentSummary = "pay invoice #1234"
			e.LatencyMS = 1234
			e.RemoteIP = "[2001:db8::1]:443"
			e.UpstreamStatus = 200
			e.RequiresStepUp = true
			e.ElevationID = "elev-9"
		})},
		{"escalate_policy", "escalate decision with pending id", with(func(e *auditCanonical) {
			e.Decision = "escalate"
			e.Check = "policy"
			e.Reason = "policy requires human approval"
			e.Tenant = "acme"
			e.PendingID = "pend-0002"
			e.LatencyMS = 7
		})},
		{"admin_event_superadmin", "admin event from the superadmin: tenant empty, tool admin/mint", with(func(e *auditCanonical) {
			e.Tool = "admin/mint"
			e.CapabilityTokenID = jti
			e.RemoteIP = "127.0.0.1:40000"
		})},
		{"empty_always_fields", "always-present strings are written even when empty", auditCanonical{TS: "2026-05-14T10:11:12Z"}},
		{"arg_keys_nil", "nil arg_keys omitted", with(func(e *auditCanonical) { e.ArgKeys = nil })},
		{"arg_keys_empty", "empty non-nil arg_keys omitted too", with(func(e *auditCanonical) { e.ArgKeys = []string{} })},
		{"arg_keys_one_empty_string", "[\"\"] is not empty: written", with(func(e *auditCanonical) { e.ArgKeys = []string{""} })},
		{"step_up_false_omitted", "requires_step_up=false is omitted, upstream_status 0 omitted", with(func(e *auditCanonical) {
			e.RequiresStepUp = false
			e.UpstreamStatus = 0
			e.CaveatCount = 0
		})},
		{"negative_numbers", "negative ints are written", with(func(e *auditCanonical) {
			e.LatencyMS = -1
			e.CaveatCount = -2
			e.UpstreamStatus = -502
		})},
		{"large_numbers", "Go int is 64-bit: caveat_count/upstream_status beyond i32, latency at i64 max", with(func(e *auditCanonical) {
			e.LatencyMS = math.MaxInt64
			e.CaveatCount = 2147483648
			e.UpstreamStatus = -(1 << 40)
		})},
		{"html_and_separators", "<, >, & and U+2028/U+2029 escaped", with(func(e *auditCanonical) {
			e.Reason = "<b>blocked</b> & logged\u2028next\u2029para"
			e.Tool = "ns<tool>&"
			e.ArgKeys = []string{"<", ">", "&", "\u2028"}
			e.IntentSummary = "if a < b && c > d"
		})},
		{"control_chars", "C0 controls, DEL, quotes, backslashes", with(func(e *auditCanonical) {
			e.Reason = "tab\there\nnl\rcr\bbs\fff\x00nul\x1fus\x7fdel\x0bvt"
			e.AgentID = `quote " backslash \ slash /`
			e.ArgKeys = []string{"\x00", "\b", "\f", "\x7f", `\u0000`}
		})},
		{"non_ascii", "non-ASCII written raw", with(func(e *auditCanonical) {
			e.Tenant = "日本"
			e.AgentID = "agent-é"
			e.Reason = "emoji 😀 and U+FFFD \ufffd and nbsp\u00a0"
			e.ArgKeys = []string{"clé", "键", "🔑"}
		})},
		{"invalid_utf8", "invalid UTF-8 -> \\ufffd escape per bad byte", with(func(e *auditCanonical) {
			e.Reason = "bad\xffbyte"
			e.IntentSummary = "trunc\xe6\x97"
			e.ArgKeys = []string{"k\xc0\xaf", "\xf0\x9f\x98"}
			e.Tenant = "acme"
		})},
	}
	for _, c := range tsInputs() {
		c := c
		specs = append(specs, auditSpec{"ts_" + c.Input, "timestamp normalisation: " + c.Description, with(func(e *auditCanonical) { e.TS = c.Input })})
	}

	for _, s := range specs {
		f.Events = append(f.Events, buildAuditCase(s, ""))
	}
	// One standalone event hashed on top of a non-empty prev hash.
	prev := computeHash("", []byte("govectors arbitrary previous event"))
	f.Events = append(f.Events, buildAuditCase(auditSpec{"nonempty_prev_hash", "prev_hash is the 64 lowercase hex chars of the previous row, prepended as ASCII", with(func(e *auditCanonical) { e.Tenant = "acme" })}, prev))

	// Chain for tenant acme: five events.
	acme := []auditSpec{
		{"acme_1_allow", "", with(func(e *auditCanonical) {
			e.TS = "2026-05-14T10:00:00.000000001Z"
			e.Tenant = "acme"
			e.AgentID = "agent-1"
			e.ArgKeys = []string{"path"}
			e.CapabilityTokenID = jti
			e.RootCapabilityTokenID = jti
			e.CaveatCount = 1
			e.LatencyMS = 2
			e.RemoteIP = "10.0.0.7:52814"
			e.UpstreamStatus = 200
		})},
		{"acme_2_block_intent", "", with(func(e *auditCanonical) {
			e.TS = "2026-05-14T10:00:01.250000Z"
			e.Tenant = "acme"
			e.Decision = "block"
			e.Check = "intent"
			e.Reason = "tool call does not match stated intent"
			e.AgentID = "agent-1"
			e.Tool = "send_email"
			e.ArgKeys = []string{"to", "subject", "body"}
			e.CapabilityTokenID = jti
			e.RootCapabilityTokenID = jti
			e.CaveatCount = 1
			e.IntentSummary = "summarise <report> & file it"
			e.LatencyMS = 41
			e.RemoteIP = "10.0.0.7:52815"
		})},
		{"acme_3_escalate", "", with(func(e *auditCanonical) {
			e.TS = "2026-05-14T12:00:02.5+02:00"
			e.Tenant = "acme"
			e.Decision = "escalate"
			e.Check = "policy"
			e.Reason = "amount above threshold"
			e.AgentID = "agent-2"
			e.Tool = "transfer_funds"
			e.ArgKeys = []string{"amount", "to"}
			e.CapabilityTokenID = child
			e.RootCapabilityTokenID = jti
			e.CaveatCount = 2
			e.PendingID = "pend-7"
			e.LatencyMS = 5
			e.RequiresStepUp = true
		})},
		{"acme_4_approved", "", with(func(e *auditCanonical) {
			e.TS = "2026-05-14T10:05:00Z"
			e.Tenant = "acme"
			e.Decision = "allow"
			e.Reason = "approved"
			e.AgentID = "agent-2"
			e.Tool = "transfer_funds"
			e.ArgKeys = []string{"amount", "to"}
			e.CapabilityTokenID = child
			e.RootCapabilityTokenID = jti
			e.CaveatCount = 2
			e.PendingID = "pend-7"
			e.DecidedBy = "bob"
			e.LatencyMS = 300012
			e.UpstreamStatus = 201
			e.ElevationID = "elev-1"
		})},
		{"acme_5_admin_revoke", "", with(func(e *auditCanonical) {
			e.TS = "2026-05-14T10:06:00.000100Z"
			e.Tenant = "acme"
			e.Tool = "admin/revoke"
			e.Reason = "compromised"
			e.CapabilityTokenID = child
			e.RemoteIP = "192.0.2.10:1234"
		})},
	}
	// Chain key "default": tenant "" and tenant "default" events share it.
	def := []auditSpec{
		{"default_1_admin_mint", "superadmin event, tenant empty", with(func(e *auditCanonical) {
			e.TS = "2026-05-14T09:00:00.999999999Z"
			e.Tool = "admin/mint"
			e.CapabilityTokenID = jti
		})},
		{"default_2_tenant_default", "explicit tenant \"default\" (written in canonical) joins the same chain", with(func(e *auditCanonical) {
			e.TS = "2026-05-14T09:00:01Z"
			e.Tenant = "default"
			e.AgentID = "agent-x"
		})},
		{"default_3_admin_promote", "", with(func(e *auditCanonical) {
			e.TS = "2026-05-14T09:00:02.000001Z"
			e.Tool = "admin/promote_policy"
			e.Reason = "draft 3 → active"
		})},
	}
	f.Chains = append(f.Chains, buildChain("acme_five_events", "acme", "five events of tenant acme; first prev_hash is \"\" (stored as NULL)", acme))
	f.Chains = append(f.Chains, buildChain("default_chain", "default", "events with tenant \"\" and \"default\" share chain key default", def))
	return f
}

func buildChain(name, key, note string, specs []auditSpec) auditChain {
	ch := auditChain{Name: name, ChainKey: key, Note: note}
	prev := ""
	for _, s := range specs {
		c := buildAuditCase(s, prev)
		if c.ChainKey != key {
			fail("chain %s: event %s has chain key %s", name, s.name, c.ChainKey)
		}
		ch.Events = append(ch.Events, c)
		prev = c.Hash
	}
	ch.HeadHash = prev
	return ch
}
