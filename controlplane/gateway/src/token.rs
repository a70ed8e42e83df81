//! `intentgate token …`: the igctl-compatible token tools (gen-key, mint, decode, verify,
//! attenuate), so tokens can be made and checked from a shell.

use std::io::Read as _;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use intentgate_shared::key_ring::{KeyRing, MasterKey};
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::{Caveat, MintRequest, Token};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new random 32-byte master key (base64url), for INTENTGATE_MASTER_KEY.
    GenKey,
    /// Mint a token signed with the master key.
    Mint(MintArgs),
    /// Print a token's claims and caveats WITHOUT verifying it.
    Decode(TokenArg),
    /// Verify a token's signature (and expiry, and optionally a tool); exit 1 on any failure.
    Verify(VerifyArgs),
    /// Append caveats to a token (no master key needed); prints the narrower token.
    Attenuate(AttenuateArgs),
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Base64 master key (raw-url, url, std or raw-std).
    #[arg(long, env = "INTENTGATE_MASTER_KEY", hide_env_values = true)]
    master_key: String,
}

#[derive(Debug, Args)]
pub struct TokenArg {
    /// The token; `-` (or nothing) reads it from standard input, keeping it out of shell history.
    token: Option<String>,
}

#[derive(Debug, Args)]
pub struct MintArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Agent id (token `sub`); an agent_lock caveat binds the token to it.
    #[arg(long)]
    subject: String,
    /// Tenant.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// Issuer.
    #[arg(long, default_value = "")]
    issuer: String,
    /// Zone: mints a v4 token (IntentGate-app compatible).
    #[arg(long)]
    zone: Option<String>,
    /// Comma-separated tools the token may call (tool_allow).
    #[arg(long, value_delimiter = ',')]
    tools: Vec<String>,
    /// Comma-separated tools the token may never call (tool_deny).
    #[arg(long, value_delimiter = ',')]
    forbidden: Vec<String>,
    /// Lifetime: seconds or a Go duration (90s, 15m, 1h30m, 2d). 0 = no expiry (not advised).
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// Lifetime call budget (max_calls caveat); 0 = none.
    #[arg(long, default_value_t = 0)]
    max_calls: i64,
    /// Record a step-up at mint time (step_up caveat).
    #[arg(long)]
    step_up: bool,
    /// Print a JSON document with the token and its claims instead of the bare token.
    #[arg(long)]
    pretty: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Comma-separated older keys also accepted (key rotation).
    #[arg(long, env = "INTENTGATE_MASTER_KEY_PREVIOUS", hide_env_values = true)]
    previous_keys: Option<String>,
    #[command(flatten)]
    token: TokenArg,
    /// Also check every caveat for a call of this tool.
    #[arg(long)]
    tool: Option<String>,
    /// Calling agent for --tool (default: the token's subject).
    #[arg(long)]
    agent: Option<String>,
    /// Evaluate at this RFC 3339 time instead of now.
    #[arg(long)]
    at: Option<String>,
}

#[derive(Debug, Args)]
pub struct AttenuateArgs {
    #[command(flatten)]
    token: TokenArg,
    /// Restrict to these tools (tool_allow).
    #[arg(long, value_delimiter = ',')]
    tools: Vec<String>,
    /// Forbid these tools (tool_deny).
    #[arg(long, value_delimiter = ',')]
    forbidden: Vec<String>,
    /// Expire after this lifetime from now (seconds or Go duration).
    #[arg(long)]
    ttl: Option<String>,
    /// Lifetime call budget (max_calls caveat).
    #[arg(long)]
    max_calls: Option<i64>,
    /// Bind to this agent (agent_lock caveat).
    #[arg(long)]
    agent: Option<String>,
}

pub fn run(cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::GenKey => {
            let (_, text) = MasterKey::generate()?;
            println!("{text}");
            Ok(())
        }
        TokenCommand::Mint(args) => mint(args),
        TokenCommand::Decode(arg) => {
            let token = Token::decode(&read_token(arg)?).context("cannot decode token")?;
            print_json(&token.to_display_json())
        }
        TokenCommand::Verify(args) => verify(args),
        TokenCommand::Attenuate(args) => attenuate(args),
    }
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn read_token(arg: TokenArg) -> Result<String> {
    let text = match arg.token.as_deref() {
        None | Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read the token from standard input")?;
            s
        }
        Some(t) => t.to_owned(),
    };
    let text = text.trim();
    let text = text.strip_prefix("Bearer ").unwrap_or(text);
    if text.is_empty() {
        bail!("no token given (pass it as an argument or on standard input)");
    }
    Ok(text.to_owned())
}

/// Parses seconds (`3600`) or a Go duration (`1h30m`, `90s`, `2d`); returns seconds.
pub fn parse_ttl(s: &str) -> Result<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        if n < 0 {
            bail!("ttl must not be negative");
        }
        return Ok(n);
    }
    let mut total: i64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        bail!("ttl is empty");
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            bail!("invalid ttl {s:?} (examples: 3600, 90s, 15m, 1h30m, 2d)");
        }
        let n: i64 = rest[..digits]
            .parse()
            .with_context(|| format!("invalid ttl {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => bail!("invalid ttl {s:?} (examples: 3600, 90s, 15m, 1h30m, 2d)"),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .context("ttl is too large")?;
    }
    Ok(total)
}

fn clean_tools(tools: Vec<String>) -> Vec<String> {
    tools
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

fn mint(args: MintArgs) -> Result<()> {
    let key = MasterKey::parse(&args.key.master_key)?;
    if args.max_calls < 0 {
        bail!("--max-calls must not be negative");
    }
    let now = Timestamp::now().unix_seconds();
    let ttl = parse_ttl(&args.ttl)?;
    if ttl == 0 {
        eprintln!("warning: --ttl 0 mints a token that never expires");
    }
    let mut caveats = vec![Caveat::agent_lock(&args.subject)];
    if ttl > 0 {
        caveats.push(Caveat::exp(now.saturating_add(ttl)));
    }
    let tools = clean_tools(args.tools);
    if !tools.is_empty() {
        caveats.push(Caveat::tool_allow(tools));
    }
    let forbidden = clean_tools(args.forbidden);
    if !forbidden.is_empty() {
        caveats.push(Caveat::tool_deny(forbidden));
    }
    if args.max_calls > 0 {
        caveats.push(Caveat::max_calls(args.max_calls));
    }
    if args.step_up {
        caveats.push(Caveat::step_up(now));
    }
    let req = MintRequest {
        subject: args.subject,
        issuer: args.issuer,
        tenant: args.tenant,
        zone: args.zone,
        not_before: 0,
        caveats,
    };
    let token = Token::mint(&key, req, now)?;
    if args.pretty {
        let expires_at = token
            .expires_at()
            .map(|s| Timestamp::from_unix_micros(s.saturating_mul(1_000_000)).to_rfc3339_nano())
            .unwrap_or_default();
        print_json(&serde_json::json!({
            "token": token.encode(),
            "jti": token.claims.jti,
            "subject": token.claims.sub,
            "tenant": token.claims.tenant,
            "expires_at": expires_at,
            "claims": token.to_display_json(),
        }))
    } else {
        println!("{}", token.encode());
        Ok(())
    }
}

fn verify(args: VerifyArgs) -> Result<()> {
    let ring = KeyRing::from_config(Some(&args.key.master_key), args.previous_keys.as_deref())?;
    let token =
        Token::decode_verified(&read_token(args.token)?, &ring).context("token is not valid")?;
    let now = match &args.at {
        Some(at) => Timestamp::parse_rfc3339(at)?.unix_seconds(),
        None => Timestamp::now().unix_seconds(),
    };
    let mut doc = token.to_display_json();
    if let Some(tool) = &args.tool {
        let agent = args.agent.as_deref().unwrap_or(&token.claims.sub);
        token
            .check(now, agent, tool)
            .context("token does not allow this call")?;
        doc["allows"] = serde_json::json!({"tool": tool, "agent": agent});
    } else {
        // Without a tool only the time-based rules can be checked.
        if token.claims.nbf != 0 && now < token.claims.nbf {
            bail!("token is not valid: token not yet valid (nbf in future)");
        }
        if let Some(exp) = token.expires_at().filter(|&e| now >= e) {
            bail!(
                "token is not valid: expired at {}",
                Timestamp::from_unix_micros(exp.saturating_mul(1_000_000))
            );
        }
    }
    doc["verified"] = serde_json::Value::Bool(true);
    print_json(&doc)
}

fn attenuate(args: AttenuateArgs) -> Result<()> {
    let mut token = Token::decode(&read_token(args.token)?).context("cannot decode token")?;
    let mut caveats = Vec::new();
    let tools = clean_tools(args.tools);
    if !tools.is_empty() {
        caveats.push(Caveat::tool_allow(tools));
    }
    let forbidden = clean_tools(args.forbidden);
    if !forbidden.is_empty() {
        caveats.push(Caveat::tool_deny(forbidden));
    }
    if let Some(n) = args.max_calls {
        if n <= 0 {
            bail!("--max-calls must be positive (0 would add a caveat that limits nothing)");
        }
        caveats.push(Caveat::max_calls(n));
    }
    if let Some(ttl) = &args.ttl {
        let ttl = parse_ttl(ttl)?;
        if ttl == 0 {
            bail!("--ttl must be positive when attenuating");
        }
        caveats.push(Caveat::exp(
            Timestamp::now().unix_seconds().saturating_add(ttl),
        ));
    }
    if let Some(agent) = args.agent {
        caveats.push(Caveat::agent_lock(&agent));
    }
    if caveats.is_empty() {
        bail!(
            "nothing to add: give at least one of --tools, --forbidden, --ttl, --max-calls, --agent"
        );
    }
    for c in caveats {
        token = token.attenuate(c)?;
    }
    println!("{}", token.encode());
    Ok(())
}
