//! The operator subcommands that drive a running gateway through its admin API: `revoke`,
//! `audit verify|export`, `policy push|promote|rollback|dry-run|list`, `approvals
//! list|decide`. Human output by default, the API's JSON with `--json`; a refusal by the API
//! is an error (exit 1) that names the status and the API's message.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::admin_api::{AdminApi, ApiArgs, print_json, success, text};

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The token id (`jti`) to revoke; every replica refuses it within moments.
    #[arg(long)]
    jti: String,
    /// Why (stored with the revocation and in the audit event).
    #[arg(long, default_value = "")]
    reason: String,
}

/// `intentgate revoke`.
pub fn revoke(args: &RevokeArgs) -> Result<()> {
    let jti = args.jti.trim();
    if jti.is_empty() {
        bail!("--jti must not be empty");
    }
    let api = AdminApi::new(&args.api)?;
    let v = api.post(
        "/v1/admin/revoke",
        &json!({"jti": jti, "reason": args.reason}),
    )?;
    if args.api.json {
        return print_json(&v);
    }
    println!("revoked {jti}");
    Ok(())
}

/// Filters shared by `audit verify` and `audit export`.
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// Tenant (a tenant admin's own tenant is forced by the gateway).
    #[arg(long)]
    tenant: Option<String>,
    /// RFC 3339 start (inclusive).
    #[arg(long)]
    from: Option<String>,
    /// RFC 3339 end (inclusive).
    #[arg(long)]
    to: Option<String>,
}

impl WindowArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        for (k, v) in [
            ("tenant", &self.tenant),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        q
    }
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    window: WindowArgs,
}

/// `intentgate audit verify`: exit 1 when the chain is broken.
pub fn audit_verify(args: &AuditVerifyArgs) -> Result<()> {
    let api = AdminApi::new(&args.api)?;
    let v = api.get("/v1/admin/audit/verify", &args.window.query())?;
    let ok = v.get("ok").and_then(Value::as_bool) == Some(true);
    if args.api.json {
        print_json(&v)?;
    } else {
        let tenant = text(&v, "tenant");
        let chain = if tenant.is_empty() {
            "default"
        } else {
            &tenant
        };
        if ok {
            let head = match (v.get("head_id"), v.get("head_at")) {
                (Some(id), Some(at)) => format!(", head row {id} at {}", at.as_str().unwrap_or("")),
                _ => String::new(),
            };
            println!(
                "ok: chain {chain:?}, {} rows verified{head}",
                text(&v, "verified")
            );
        } else {
            let b = v.get("broken_at").cloned().unwrap_or(Value::Null);
            println!(
                "BROKEN: chain {chain:?} at row {} ({}): {}; {} rows verified before it",
                text(&b, "id"),
                text(&b, "ts"),
                text(&b, "reason"),
                text(&v, "verified")
            );
            println!("  stored hash:   {}", text(&b, "stored_hash"));
            println!("  expected hash: {}", text(&b, "expected_hash"));
            println!("  next: docs/OPERATIONS.md, \"Audit chain broken\"");
        }
    }
    if ok {
        Ok(())
    } else {
        bail!("the audit chain does not verify")
    }
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    window: WindowArgs,
    /// `csv` (the Go gateway's 22 columns) or `json` (NDJSON with the chain columns, which
    /// `audit verify-file` checks).
    #[arg(long, default_value = "csv", value_parser = ["csv", "json"])]
    format: String,
    /// Only this agent.
    #[arg(long)]
    agent_id: Option<String>,
    /// Only this tool.
    #[arg(long)]
    tool: Option<String>,
    /// Only this decision (allow, block, escalate).
    #[arg(long)]
    decision: Option<String>,
    /// Write here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// `intentgate audit export`: streams the export; says on stderr when the row cap cut it.
pub fn audit_export(args: &AuditExportArgs) -> Result<()> {
    let api = AdminApi::new(&args.api)?;
    let mut query = args.window.query();
    query.push(("format", args.format.clone()));
    for (k, v) in [
        ("agent_id", &args.agent_id),
        ("tool", &args.tool),
        ("decision", &args.decision),
    ] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    let cap = match &args.output {
        Some(path) => {
            // A partial file must not pass for a complete export: write beside it, rename
            // only once the download finished.
            let tmp = path.with_extension("partial");
            let mut file = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            let cap = api.download("/v1/admin/audit/export", &query, &mut file);
            if cap.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            let cap = cap?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            cap
        }
        None => api.download(
            "/v1/admin/audit/export",
            &query,
            &mut std::io::stdout().lock(),
        )?,
    };
    if let Some(cap) = cap {
        eprintln!(
            "intentgate: the export stopped at the row cap ({cap} rows); narrow --from/--to and export the rest"
        );
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Save a Rego file as a draft (compiled by the gateway on save); `--promote` also makes
    /// it active.
    Push(PushArgs),
    /// Make a draft the active policy of a tenant slot (or the default slot).
    Promote(PromoteArgs),
    /// Swap back to the previous active draft (one step).
    Rollback(RollbackArgs),
    /// Replay recorded audit events against a candidate Rego file; nothing changes.
    DryRun(DryRunArgs),
    /// List drafts and show what is active.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The Rego file.
    #[arg(long)]
    file: PathBuf,
    /// Draft name (default: the file name).
    #[arg(long)]
    name: Option<String>,
    /// Description.
    #[arg(long, default_value = "")]
    description: String,
    /// Tenant the draft belongs to (none: usable by any slot).
    #[arg(long)]
    tenant: Option<String>,
    /// Who pushes (recorded on the draft and, with --promote, in the audit event).
    #[arg(long, default_value = "intentgate-cli")]
    by: String,
    /// Promote the new draft right away.
    #[arg(long)]
    promote: bool,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Draft id (`policy push` and `policy list` print it).
    #[arg(long)]
    draft: String,
    /// Tenant slot (none: the default slot).
    #[arg(long)]
    tenant: Option<String>,
    /// Who promotes (recorded in the audit event).
    #[arg(long, default_value = "intentgate-cli")]
    by: String,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Tenant slot (none: the default slot).
    #[arg(long)]
    tenant: Option<String>,
    /// Who rolls back (recorded in the audit event).
    #[arg(long, default_value = "intentgate-cli")]
    by: String,
}

#[derive(Debug, Args)]
pub struct DryRunArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The candidate Rego file.
    #[arg(long)]
    file: PathBuf,
    #[command(flatten)]
    window: WindowArgs,
    /// Only this agent's events.
    #[arg(long)]
    agent_id: Option<String>,
    /// Only this tool's events.
    #[arg(long)]
    tool: Option<String>,
    /// Events to replay (gateway default 10,000; at most 100,000).
    #[arg(long)]
    limit: Option<u64>,
    /// Divergent events to show (gateway default 100; at most 1,000).
    #[arg(long)]
    max_samples: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Tenant (drafts of and active slot for).
    #[arg(long)]
    tenant: Option<String>,
}

fn read_rego(path: &PathBuf) -> Result<String> {
    let src =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if src.trim().is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(src)
}

/// `intentgate policy …`.
pub fn policy(cmd: &PolicyCommand) -> Result<()> {
    match cmd {
        PolicyCommand::Push(a) => push(a),
        PolicyCommand::Promote(a) => {
            let api = AdminApi::new(&a.api)?;
            let v = promote(&api, &a.draft, a.tenant.as_deref(), &a.by)?;
            if a.api.json {
                return print_json(&v);
            }
            print_active("promoted", &v);
            Ok(())
        }
        PolicyCommand::Rollback(a) => {
            let api = AdminApi::new(&a.api)?;
            let v = api.post(
                "/v1/admin/policies/rollback",
                &json!({"rolled_back_by": a.by, "tenant": a.tenant}),
            )?;
            if a.api.json {
                return print_json(&v);
            }
            print_active("rolled back", &v);
            Ok(())
        }
        PolicyCommand::DryRun(a) => dry_run(a),
        PolicyCommand::List(a) => list(a),
    }
}

fn push(a: &PushArgs) -> Result<()> {
    let src = read_rego(&a.file)?;
    let name = a.name.clone().unwrap_or_else(|| {
        a.file
            .file_name()
            .map_or("policy".into(), |n| n.to_string_lossy().into_owned())
    });
    let api = AdminApi::new(&a.api)?;
    let draft = api.post(
        "/v1/admin/policies/drafts",
        &json!({
            "name": name,
            "description": a.description,
            "rego_source": src,
            "created_by": a.by,
            "tenant": a.tenant,
        }),
    )?;
    let id = text(&draft, "id");
    let promoted = if a.promote {
        Some(promote(&api, &id, a.tenant.as_deref(), &a.by)?)
    } else {
        None
    };
    if a.api.json {
        return print_json(&json!({"draft": draft, "promoted": promoted}));
    }
    println!("draft {id} saved ({name})");
    match &promoted {
        Some(v) => print_active("promoted", v),
        None => println!("next: intentgate policy promote --draft {id}"),
    }
    Ok(())
}

fn promote(api: &AdminApi, draft: &str, tenant: Option<&str>, by: &str) -> Result<Value> {
    let draft = draft.trim();
    if draft.is_empty() {
        bail!("--draft must not be empty");
    }
    api.post(
        "/v1/admin/policies/active",
        &json!({"draft_id": draft, "promoted_by": by, "tenant": tenant}),
    )
}

fn print_active(what: &str, v: &Value) {
    let active = v.get("active").cloned().unwrap_or(Value::Null);
    let tenant = text(&active, "tenant");
    let slot = if tenant.is_empty() {
        "default slot".to_owned()
    } else {
        format!("tenant {tenant}")
    };
    println!(
        "{what}: {slot} now runs draft {} (previous: {})",
        text(&active, "current_draft_id"),
        Some(text(&active, "previous_draft_id"))
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "none".into())
    );
}

fn dry_run(a: &DryRunArgs) -> Result<()> {
    let src = read_rego(&a.file)?;
    let api = AdminApi::new(&a.api)?;
    let v = api.post(
        "/v1/admin/policies/dry-run",
        &json!({
            "rego": src,
            "tenant": a.window.tenant,
            "from": a.window.from,
            "to": a.window.to,
            "agent_id": a.agent_id,
            "tool": a.tool,
            "limit": a.limit,
            "max_samples": a.max_samples,
        }),
    )?;
    if a.api.json {
        return print_json(&v);
    }
    let s = v.get("summary").cloned().unwrap_or(Value::Null);
    println!(
        "{} events replayed: would allow {}, block {}, escalate {}, policy errors {}",
        text(&s, "events_evaluated"),
        text(&s, "would_allow"),
        text(&s, "would_block"),
        text(&s, "would_escalate"),
        text(&s, "policy_error")
    );
    println!(
        "changes: allow→block {}, allow→escalate {}, block→allow {}, block→escalate {}, escalate→allow {}, escalate→block {}",
        text(&s, "allow_to_block"),
        text(&s, "allow_to_escalate"),
        text(&s, "block_to_allow"),
        text(&s, "block_to_escalate"),
        text(&s, "escalate_to_allow"),
        text(&s, "escalate_to_block")
    );
    for sample in v
        .get("samples")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let err = text(sample, "candidate_error");
        println!(
            "  {} {} agent={} {} → {}{}",
            text(sample, "ts"),
            text(sample, "tool"),
            text(sample, "agent_id"),
            text(sample, "original_decision"),
            text(sample, "candidate_decision"),
            if err.is_empty() {
                String::new()
            } else {
                format!(" (error: {err})")
            }
        );
    }
    for w in v
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        println!("warning: {}", w.as_str().unwrap_or_default());
    }
    Ok(())
}

fn list(a: &ListArgs) -> Result<()> {
    let api = AdminApi::new(&a.api)?;
    let tenant: Vec<(&str, String)> = a.tenant.iter().map(|t| ("tenant", t.clone())).collect();
    let drafts = api.get("/v1/admin/policies/drafts", &tenant)?;
    let active = api.get("/v1/admin/policies/active", &tenant)?;
    if a.api.json {
        return print_json(&json!({"drafts": drafts.get("drafts"), "active": active}));
    }
    let current = active
        .get("active")
        .map(|x| text(x, "current_draft_id"))
        .unwrap_or_default();
    println!("active source: {}", text(&active, "source"));
    for d in drafts
        .get("drafts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = text(d, "id");
        println!(
            "{} {id}  {}  updated {}{}",
            if id == current { "*" } else { " " },
            text(d, "name"),
            text(d, "updated_at"),
            Some(text(d, "tenant"))
                .filter(|t| !t.is_empty())
                .map(|t| format!("  tenant {t}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List approval requests, newest first.
    List(ApprovalsListArgs),
    /// Approve or reject a pending request; the waiting call resumes on whichever replica
    /// holds it.
    Decide(DecideArgs),
}

#[derive(Debug, Args)]
pub struct ApprovalsListArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Only this state.
    #[arg(long, value_parser = ["pending", "approved", "rejected", "timeout"])]
    status: Option<String>,
    /// Rows (1..1000).
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The pending request's id.
    id: String,
    /// Let the call through.
    #[arg(long, conflicts_with = "reject", required_unless_present = "reject")]
    approve: bool,
    /// Refuse the call.
    #[arg(long)]
    reject: bool,
    /// Reviewer's name (stored as decided_by).
    #[arg(long)]
    by: String,
    /// Note stored with the decision.
    #[arg(long, default_value = "")]
    note: String,
}

/// `intentgate approvals …`.
pub fn approvals(cmd: &ApprovalsCommand) -> Result<()> {
    match cmd {
        ApprovalsCommand::List(a) => {
            let api = AdminApi::new(&a.api)?;
            let mut q = vec![("limit", a.limit.to_string())];
            if let Some(s) = &a.status {
                q.push(("status", s.clone()));
            }
            let v = api.get("/v1/admin/approvals", &q)?;
            if a.api.json {
                return print_json(&v);
            }
            let rows = v.get("approvals").and_then(Value::as_array);
            if rows.is_none_or(|r| r.is_empty()) {
                println!("no approval requests");
            }
            for r in rows.into_iter().flatten() {
                println!(
                    "{}  {:<8}  tenant={} agent={} tool={}  {}{}",
                    text(r, "pending_id"),
                    text(r, "status"),
                    text(r, "tenant"),
                    text(r, "agent_id"),
                    text(r, "tool"),
                    text(r, "created_at"),
                    Some(text(r, "decided_by"))
                        .filter(|b| !b.is_empty())
                        .map(|b| format!("  by {b}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        ApprovalsCommand::Decide(a) => {
            let id = a.id.trim();
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                bail!("{id:?} is not a request id (`approvals list` shows them)");
            }
            if a.by.trim().is_empty() {
                bail!("--by must name the reviewer");
            }
            let decision = if a.approve { "approve" } else { "reject" };
            let api = AdminApi::new(&a.api)?;
            let answer = api.post_any(
                &format!("/v1/admin/approvals/{id}/decide"),
                &json!({"decision": decision, "decided_by": a.by.trim(), "note": a.note}),
            )?;
            if answer.status == 409 {
                let cur = answer.body.get("current").cloned().unwrap_or(Value::Null);
                bail!(
                    "request {id} was already decided: {} by {:?}",
                    text(&cur, "status"),
                    text(&cur, "decided_by")
                );
            }
            let v = success(answer)?;
            if a.api.json {
                return print_json(&v);
            }
            println!("{id}: {}", text(&v, "status"));
            Ok(())
        }
    }
}
