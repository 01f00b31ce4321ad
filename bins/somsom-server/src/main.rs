//! `somsom-server`: reads config, sets up logging, builds and serves. Everything else lives in
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use somsom_server::{Config, build, shutdown_signal, telemetry};

/// SomSom festival reservation server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML configuration file; `SOMSOM_*` environment variables override it.
    #[arg(long, env = "SOMSOM_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the effective configuration (secrets masked) and exit.
    Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("somsom-server: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Config => {
            let pretty = serde_json::to_string_pretty(&config.redacted()).unwrap_or_default();
            eprintln!("{pretty}");
            ExitCode::SUCCESS
        }
        Command::Serve => serve(config).await,
    }
}

async fn serve(config: Config) -> ExitCode {
    telemetry::init(&config.log);
    tracing::info!(config = %config.redacted(), "effective configuration");
    let app = match build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %app.local_addr(), "listening");
    match app.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}
