//! What the load is made of: the scenarios, their mix, the outcome each one must produce,
//! and the deck of pre-built requests the connections walk through.

use crate::outcome::Outcome;

/// Tools of the load-test upstream and policy.
pub const TOOLS: &[&str] = &[
    "read_invoice",
    "upload_document",
    "delete_customer",
    "transfer_funds",
];

/// The policy a spawned gateway runs: each scenario's tool gets its decision.
pub const POLICY: &str = r#"package intentgate.policy
import rego.v1

default decision := {"allow": false, "reason": "denied by default"}

decision := {"allow": true, "reason": "load test: read"} if input.tool == "read_invoice"

decision := {"allow": true, "reason": "load test: upload"} if input.tool == "upload_document"

decision := {"allow": false, "escalate": true, "reason": "load test: needs review"} if input.tool == "transfer_funds"
"#;

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// An allowed `tools/call` (tokens rotate through the pool).
    Allow,
    /// A `tools/call` the policy denies.
    PolicyDeny,
    /// A token whose signature does not verify.
    BadToken,
    /// A token revoked before the run.
    Revoked,
    /// A token whose `max_calls` budget is spent.
    Budget,
    /// A call the policy escalates (a spawned gateway runs with approvals off, so it is
    /// refused at once; against a gateway with approvals on it would wait for a reviewer).
    Escalation,
    /// `tools/list`.
    ToolsList,
    /// An allowed `tools/call` with 16 KiB of arguments.
    Large,
}

impl Scenario {
    pub const ALL: [Scenario; 8] = [
        Self::Allow,
        Self::PolicyDeny,
        Self::BadToken,
        Self::Revoked,
        Self::Budget,
        Self::Escalation,
        Self::ToolsList,
        Self::Large,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::PolicyDeny => "policy_deny",
            Self::BadToken => "bad_token",
            Self::Revoked => "revoked",
            Self::Budget => "budget",
            Self::Escalation => "escalation",
            Self::ToolsList => "tools_list",
            Self::Large => "large",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The JSON-RPC outcome a correct gateway gives this scenario.
    pub fn expected(self) -> Outcome {
        match self {
            Self::Allow | Self::ToolsList | Self::Large => Outcome::Result,
            Self::PolicyDeny | Self::Escalation => Outcome::Error(-32012),
            Self::BadToken | Self::Revoked => Outcome::Error(-32010),
            Self::Budget => Outcome::Error(-32013),
        }
    }

    /// The JSON-RPC body of request number `n` of this scenario.
    pub fn body(self, n: usize) -> String {
        let call = |tool: &str, args: String| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
            )
        };
        match self {
            Self::Allow | Self::BadToken | Self::Revoked | Self::Budget => {
                call("read_invoice", format!(r#"{{"id":"INV-{n}"}}"#))
            }
            Self::PolicyDeny => call("delete_customer", format!(r#"{{"id":"C-{n}"}}"#)),
            Self::Escalation => call("transfer_funds", format!(r#"{{"amount":{n},"to":"ACME"}}"#)),
            Self::ToolsList => format!(r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/list"}}"#),
            Self::Large => call(
                "upload_document",
                format!(
                    r#"{{"name":"doc-{n}.txt","content":"{}"}}"#,
                    "a".repeat(16 * 1024)
                ),
            ),
        }
    }
}

/// Scenario weights, e.g. `allow=90,policy_deny=5,bad_token=5`; `all` weighs every scenario 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix(pub Vec<(Scenario, u32)>);

impl Mix {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "all" {
            return Ok(Self(Scenario::ALL.iter().map(|&s| (s, 1)).collect()));
        }
        let names = || {
            Scenario::ALL
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut mix: Vec<(Scenario, u32)> = Vec::new();
        for part in text.split(',') {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("--mix: {part:?} is not name=weight"))?;
            let scenario = Scenario::from_name(name.trim())
                .ok_or_else(|| format!("--mix: unknown scenario {name:?} (one of {})", names()))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("--mix: the weight of {name} is not a whole number"))?;
            if mix.iter().any(|(s, _)| *s == scenario) {
                return Err(format!("--mix: {name} is given twice"));
            }
            if weight > 0 {
                mix.push((scenario, weight));
            }
        }
        if mix.is_empty() {
            return Err("--mix: every weight is 0".into());
        }
        Ok(Self(mix))
    }

    pub fn contains(&self, scenario: Scenario) -> bool {
        self.0.iter().any(|(s, _)| *s == scenario)
    }

    /// `len` scenarios in the mix's proportions, evenly interleaved (smooth weighted
    /// round-robin), so any stretch of the run sees the mix, not one scenario after another.
    pub fn sequence(&self, len: usize) -> Vec<Scenario> {
        let total: i64 = self.0.iter().map(|(_, w)| i64::from(*w)).sum();
        let mut current = vec![0i64; self.0.len()];
        (0..len)
            .map(|_| {
                let mut best = 0;
                for (i, (_, w)) in self.0.iter().enumerate() {
                    current[i] += i64::from(*w);
                    if current[i] > current[best] {
                        best = i;
                    }
                }
                current[best] -= total;
                self.0[best].0
            })
            .collect()
    }
}

/// The tokens each scenario presents.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// A pool of valid tokens, so token caches are exercised by more than one token.
    pub allow: Vec<String>,
    pub bad: String,
    pub revoked: String,
    pub budget: String,
}

impl Tokens {
    fn for_request(&self, scenario: Scenario, n: usize) -> &str {
        match scenario {
            Scenario::BadToken => &self.bad,
            Scenario::Revoked => &self.revoked,
            Scenario::Budget => &self.budget,
            _ => self
                .allow
                .get(n % self.allow.len().max(1))
                .map_or("", String::as_str),
        }
    }
}

/// One pre-built request: the bytes to write and the scenario they belong to.
#[derive(Debug, Clone)]
pub struct Request {
    pub scenario: Scenario,
    pub bytes: Vec<u8>,
}

/// The requests of one run, built once before it: per request the client only writes bytes.
pub fn deck(mix: &Mix, tokens: &Tokens, host: &str, path: &str, len: usize) -> Vec<Request> {
    mix.sequence(len)
        .into_iter()
        .enumerate()
        .map(|(n, scenario)| {
            let body = scenario.body(n + 1);
            let token = tokens.for_request(scenario, n);
            let auth = if token.is_empty() {
                String::new()
            } else {
                format!("Authorization: Bearer {token}\r\n")
            };
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n\
                 Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(body.as_bytes());
            Request { scenario, bytes }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_bad_ones_are_refused_precisely() {
        let m = Mix::parse("allow=3,policy_deny=1").unwrap();
        assert_eq!(m.0, vec![(Scenario::Allow, 3), (Scenario::PolicyDeny, 1)]);
        assert_eq!(Mix::parse("all").unwrap().0.len(), Scenario::ALL.len());
        assert!(Mix::parse("allow").unwrap_err().contains("name=weight"));
        assert!(
            Mix::parse("nope=1")
                .unwrap_err()
                .contains("unknown scenario")
        );
        assert!(Mix::parse("allow=x").unwrap_err().contains("whole number"));
        assert!(Mix::parse("allow=1,allow=2").unwrap_err().contains("twice"));
        assert!(
            Mix::parse("allow=0")
                .unwrap_err()
                .contains("every weight is 0")
        );
    }

    #[test]
    fn sequences_keep_the_proportions_and_interleave() {
        let m = Mix::parse("allow=3,budget=1").unwrap();
        let seq = m.sequence(400);
        let budget = seq.iter().filter(|s| **s == Scenario::Budget).count();
        assert_eq!(budget, 100);
        // Interleaved: never more than three allows in a row.
        assert!(seq.windows(4).all(|w| w.contains(&Scenario::Budget)));
    }

    #[test]
    fn decks_carry_each_scenarios_token_and_a_correct_length() {
        let tokens = Tokens {
            allow: vec!["A1".into(), "A2".into()],
            bad: "BAD".into(),
            revoked: "REV".into(),
            budget: "BUD".into(),
        };
        let d = deck(&Mix::parse("all").unwrap(), &tokens, "h", "/v1/mcp", 16);
        for r in &d {
            let text = String::from_utf8(r.bytes.clone()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.contains(&format!("Content-Length: {}", body.len())));
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["jsonrpc"], "2.0");
            let want = match r.scenario {
                Scenario::BadToken => "BAD",
                Scenario::Revoked => "REV",
                Scenario::Budget => "BUD",
                _ => "Bearer A",
            };
            assert!(head.contains(want), "{head}");
            if r.scenario == Scenario::Large {
                assert!(body.len() > 16 * 1024);
            }
        }
    }
}
