//! `intentgate`: the gateway binary. Parses the command line, then hands over to the
//! libraries; no logic of its own beyond wiring.

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
        Command::Serve | Command::Dev => {
            eprintln!(
                "intentgate: the gateway server arrives with the data plane; today this binary offers `token` and `migrate`"
            );
            return ExitCode::from(2);
        }
        Command::Migrate(args) => migrate(&args),
        Command::Token(cmd) => token::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("intentgate: {e:#}");
            ExitCode::FAILURE
        }
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
