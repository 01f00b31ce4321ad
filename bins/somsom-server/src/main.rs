//! `somsom-server`: reads config, sets up logging, builds and serves. Everything else lives in
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use somsom_server::{Application, Config, build, shutdown_signal, telemetry};

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
    /// Make a confirmed user an admin (in the identity provider and in `users`).
    GrantAdmin {
        /// The user's e-mail address.
        email: String,
    },
    /// Fill the catalog with realistic festivals (Korean and English), for load tests and demos.
    GenerateFestivals {
        /// How many.
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// The same seed gives the same festivals.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Make confirmed accounts `{prefix}{n}@bench.local` (n from `start`) with the password
    /// `Festival1!`, sign each in, and print `email<TAB>access token` lines: for load tests
    /// (the password is hashed once for all of them). Local identity provider only.
    ProvisionAccounts {
        /// How many.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// The first number.
        #[arg(long, default_value_t = 0)]
        start: usize,
        /// The start of each e-mail address.
        #[arg(long, default_value = "load")]
        prefix: String,
    },
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
        Command::GrantAdmin { email } => grant_admin(config, &email).await,
        Command::GenerateFestivals { count, seed } => generate(config, count, seed).await,
        Command::ProvisionAccounts {
            count,
            start,
            prefix,
        } => provision(config, start..start + count, &prefix).await,
    }
}

/// The application for a one-off command: the database and the engines, never the server's
/// port (it binds a free loopback one and does not serve).
async fn build_for_command(mut config: Config) -> Result<Application, ExitCode> {
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    build(config).await.map_err(|e| {
        eprintln!("somsom-server: {}", e.report());
        ExitCode::FAILURE
    })
}

async fn generate(config: Config, count: usize, seed: u64) -> ExitCode {
    let app = match build_for_command(config).await {
        Ok(app) => app,
        Err(code) => return code,
    };
    let started = std::time::Instant::now();
    let festivals = somsom_server::generate::festivals(seed, count);
    let mut made = 0;
    for chunk in festivals.chunks(1_000) {
        match somsom_server::festivals::create_many(app.state(), chunk.to_vec()).await {
            Ok(created) => made += created.len(),
            Err(e) => {
                eprintln!("somsom-server: generating festivals failed after {made}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!(
        "generated {made} festivals in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

async fn provision(config: Config, numbers: std::ops::Range<usize>, prefix: &str) -> ExitCode {
    use std::io::Write;
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("somsom-server: {what}: {e}");
        ExitCode::FAILURE
    };
    if config.auth.backend != somsom_server::config::AuthBackend::Local {
        return fail("provision-accounts", &"needs auth.backend = local");
    }
    let db = match somsom_server::db::Database::connect(&config.database_url).await {
        Ok(db) => db,
        Err(e) => return fail("database", &e),
    };
    if let Err(e) = db.migrate().await {
        return fail("migrations", &e);
    }
    let sender = std::sync::Arc::new(cognito_auth::sender::LogSender);
    let clock = std::sync::Arc::new(cognito_auth::SystemClock);
    let identity = match somsom_server::local_identity(&config, &db, sender, clock).await {
        Ok(identity) => identity,
        Err(e) => return fail("identity provider", &e),
    };
    let started = std::time::Instant::now();
    let people: Vec<(String, String)> = numbers
        .map(|n| (format!("{prefix}{n}@bench.local"), format!("{prefix} {n}")))
        .collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for chunk in people.chunks(1_000) {
        let logins = match identity.provision(chunk, "Festival1!").await {
            Ok(logins) => logins,
            Err(e) => return fail("provisioning", &e),
        };
        for login in logins {
            if let Err(e) = somsom_server::auth::users::upsert(&db, &login.user).await {
                return fail("users row", &e);
            }
            if let Err(e) = writeln!(out, "{}\t{}", login.user.email, login.tokens.access_token) {
                return fail("output", &e);
            }
        }
    }
    drop(out);
    db.close().await;
    eprintln!(
        "provisioned {} accounts in {:.1} s",
        people.len(),
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

async fn grant_admin(config: Config, email: &str) -> ExitCode {
    let app = match build_for_command(config).await {
        Ok(app) => app,
        Err(code) => return code,
    };
    let state = app.state();
    match somsom_server::workflows::accounts::grant_admin(state.auth.as_ref(), &state.db, email)
        .await
    {
        Ok(user) => {
            eprintln!("{} (users.id {}) is now an admin", user.email, user.id);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("somsom-server: cannot grant admin to {email}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    telemetry::init(&config.log);
    tracing::info!(config = %config.redacted(), "effective configuration");
    let app = match build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e.report(), "cannot start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %app.local_addr(), "listening");
    match app.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %somsom_server::error::Report(&e), "server failed");
            ExitCode::FAILURE
        }
    }
}
