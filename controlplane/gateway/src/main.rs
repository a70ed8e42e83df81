//! `intentgate`: the gateway binary. Parses the command line, then hands over to the
//! libraries; no logic of its own beyond wiring.

mod admin_api;
mod gateway;
mod operator;
mod token;

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use intentgate_controlplane::store;

#[derive(Debug, Parser)]
#[command(name = "intentgate", version = intentgate_shared::VERSION, about = "Authorization gateway for AI agents (MCP)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (both planes) from the INTENTGATE_* environment.
    Serve,
    /// Run an embedded quickstart gateway (in-memory stores, demo upstream).
    Dev,
    /// Apply database migrations to INTENTGATE_POSTGRES_URL and exit.
    Migrate(MigrateArgs),
    /// Capability token tools (igctl-compatible).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Revoke a capability token by jti (admin API).
    Revoke(operator::RevokeArgs),
    /// Audit chain: verify and export (admin API), verify an export offline, maintenance.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Policy drafts: push, promote, roll back, dry-run (admin API).
    #[command(subcommand)]
    Policy(operator::PolicyCommand),
    /// Human approvals: list and decide (admin API).
    #[command(subcommand)]
    Approvals(operator::ApprovalsCommand),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify a tenant's hash chain on the gateway (exit 1 when it is broken).
    Verify(operator::AuditVerifyArgs),
    /// Download the audit log as CSV or NDJSON.
    Export(operator::AuditExportArgs),
    /// Start a new chain segment after an investigated break (docs/OPERATIONS.md): appends a
    /// marker event; verification starts from it, older rows stay queryable.
    Rebaseline(RebaselineArgs),
    /// Print a new Ed25519 seed for INTENTGATE_AUDIT_SIGNING_KEY and its public key.
    GenSigningKey,
    /// Verify an NDJSON export (`/v1/admin/audit/export?format=json`) against a signed
    /// checkpoint (`/v1/admin/audit/checkpoints`), offline.
    VerifyFile(VerifyFileArgs),
}

#[derive(Debug, clap::Args)]
struct VerifyFileArgs {
    /// The NDJSON export.
    #[arg(long)]
    export: std::path::PathBuf,
    /// A checkpoint: one object of the checkpoints list, or the whole response (its newest
    /// checkpoint is used).
    #[arg(long)]
    checkpoint: std::path::PathBuf,
    /// The signer's public key (base64), as the checkpoints route and the startup log show it.
    #[arg(long)]
    public_key: String,
}

#[derive(Debug, clap::Args)]
struct RebaselineArgs {
    /// Postgres URL.
    #[arg(long, env = "INTENTGATE_POSTGRES_URL", hide_env_values = true)]
    database_url: String,
    /// Tenant whose chain to re-baseline ("" or "default": the default chain).
    #[arg(long)]
    tenant: String,
    /// What the investigation found (stored as the marker's reason).
    #[arg(long)]
    note: String,
}

#[derive(Debug, clap::Args)]
struct MigrateArgs {
    /// Postgres URL.
    #[arg(long, env = "INTENTGATE_POSTGRES_URL", hide_env_values = true)]
    database_url: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve => {
            init_logs(true);
            gateway::serve()
        }
        Command::Dev => {
            init_logs(false);
            gateway::dev()
        }
        Command::Migrate(args) => migrate(&args),
        Command::Token(cmd) => token::run(cmd),
        Command::Revoke(args) => operator::revoke(&args),
        Command::Policy(cmd) => operator::policy(&cmd),
        Command::Approvals(cmd) => operator::approvals(&cmd),
        Command::Audit(AuditCommand::Verify(args)) => operator::audit_verify(&args),
        Command::Audit(AuditCommand::Export(args)) => operator::audit_export(&args),
        Command::Audit(AuditCommand::Rebaseline(args)) => rebaseline(&args),
        Command::Audit(AuditCommand::GenSigningKey) => gen_signing_key(),
        Command::Audit(AuditCommand::VerifyFile(args)) => verify_file(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line per problem (a configuration error lists each variable on its own).
            for line in format!("{e:#}").lines().filter(|l| !l.trim().is_empty()) {
                eprintln!("intentgate: {}", line.trim());
            }
            ExitCode::FAILURE
        }
    }
}

/// `serve` logs JSON lines to stdout, as the runbook says (beside the audit lines of
/// `INTENTGATE_AUDIT_TARGET=stdout`: each line is one whole JSON object, told apart by its
/// keys). `dev` logs compactly to stderr, leaving stdout to its banner. The level comes from
/// `LOG_LEVEL` (default info). Fatal startup errors go to stderr in both.
fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(
        std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".into()),
    )
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().with_writer(std::io::stdout).init();
    } else {
        builder.compact().with_writer(std::io::stderr).init();
    }
}

fn migrate(args: &MigrateArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start runtime")?;
    rt.block_on(async {
        let pool = store::connect(&args.database_url, 2).await?;
        let applied = store::migrate(&pool).await?;
        if applied.is_empty() {
            println!("schema is up to date");
        } else {
            println!("applied migrations: {applied:?}");
        }
        Ok(())
    })
}

fn rebaseline(args: &RebaselineArgs) -> Result<()> {
    anyhow::ensure!(
        !args.note.trim().is_empty(),
        "--note must say what the investigation found"
    );
    let key = intentgate_shared::audit::chain_key(args.tenant.trim()).to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start runtime")?;
    rt.block_on(async {
        let pool = store::connect(&args.database_url, 1).await?;
        let id = store::audit::rebaseline(&pool, &key, args.note.trim())
            .await
            .context("cannot write the marker")?;
        println!("chain {key:?} re-baselined at audit row {id}; verification starts there");
        Ok(())
    })
}

fn gen_signing_key() -> Result<()> {
    use intentgate_controlplane::checkpoint::Signer;
    let seed = Signer::generate_seed();
    let signer = Signer::from_seed(&seed).context("the system RNG failed")?;
    println!("INTENTGATE_AUDIT_SIGNING_KEY={seed}");
    println!("public key: {}", signer.public_key());
    println!("key id: {}", signer.key_id());
    Ok(())
}

fn verify_file(args: &VerifyFileArgs) -> Result<()> {
    let export = std::fs::read_to_string(&args.export)
        .with_context(|| format!("cannot read {}", args.export.display()))?;
    let text = std::fs::read_to_string(&args.checkpoint)
        .with_context(|| format!("cannot read {}", args.checkpoint.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).context("the checkpoint file is not JSON")?;
    let checkpoint = match doc.get("checkpoints") {
        Some(list) => list
            .get(0)
            .cloned()
            .context("the checkpoints list is empty")?,
        None => doc,
    };
    let report =
        intentgate_controlplane::checkpoint::verify_export(&export, &checkpoint, &args.public_key)
            .map_err(|e| anyhow::anyhow!("verification failed: {e}"))?;
    println!(
        "ok: chain {:?}, {} rows verified, seq {} matches the checkpoint signed at {}",
        report.chain, report.verified, report.seq, report.signed_at
    );
    Ok(())
}
