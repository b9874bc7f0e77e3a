//! The `tlsward` binary: parse the command line, set up logging and the crypto provider,
//! dispatch, and map failures to exit codes (64 for configuration errors).

use std::process::ExitCode;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::Parser;
use tlsward::cli::{CertsCommand, Cli, Command, TokenCommand};
use tlsward::config::{Config, EXIT_CONFIG};

fn init_tracing(filter: &str, format: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log, &cli.log_format);
    tlsward::install_crypto_provider();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::CheckConfig(args) => Ok(match load(&args) {
            Ok((config, snapshot, _)) => {
                print!("{}", config.describe(&snapshot));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{e}");
                ExitCode::from(EXIT_CONFIG as u8)
            }
        }),
        Command::Serve(args) => {
            let (config, snapshot, kube) = match load(&args) {
                Ok(x) => x,
                Err(e) => {
                    eprint!("{e}");
                    return Ok(ExitCode::from(EXIT_CONFIG as u8));
                }
            };
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(serve(config, snapshot, kube))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan(a) => tlsward::scan::command::run(&a),
        Command::Certs {
            command: CertsCommand::Dev(a),
        } => {
            let opts = tlsward::pki::DevPkiOptions {
                extra_sans: a.sans,
                db_user: a.db_user,
                key_type: a.key_type,
            };
            let layout = tlsward::pki::generate_dev(&a.out, &opts)?;
            println!(
                "dev PKI written:\n  {}/ca.crt (CA)\n  {}/ (HTTPS server: tls.crt, tls.key, ca.crt)\n  {}/ (DB server)\n  {}/ (DB client: tls.*, client.{}.*)\n  {}/ (token keys)",
                layout.ca.display(),
                layout.server.display(),
                layout.db_server.display(),
                layout.db_client.display(),
                opts.db_user,
                layout.tokens.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            command: TokenCommand::Issue(a),
        } => {
            if a.ttl.is_zero() || a.ttl > tlsward::token::MAX_TTL {
                eprintln!("--ttl must be between 1s and 24h: tokens are short-lived");
                return Ok(ExitCode::from(EXIT_CONFIG as u8));
            }
            let keys = match tlsward::token::TokenKeys::load_dir(&a.token_key_dir) {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("--token-key-dir (TLSWARD_TOKEN_KEY_DIR): {e}");
                    return Ok(ExitCode::from(EXIT_CONFIG as u8));
                }
            };
            println!("{}", keys.issue(&a.sub, a.ttl, tlsward::util::now_unix()));
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            command: TokenCommand::NewKey(a),
        } => {
            let path = a.token_key_dir.join(&a.kid);
            if path.exists() {
                anyhow::bail!("{} exists; choose a new --kid", path.display());
            }
            tlsward::pki::write_file(&path, &tlsward::token::generate_key_text(), true)?;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// [`Config::load`], plus what needs the environment: the Kubernetes client configuration
/// when a kube feature is forced on (its absence is a configuration error).
type Loaded = (Config, tlsward::snapshot::Snapshot, Option<kube::Config>);

fn load(args: &tlsward::cli::ServeArgs) -> Result<Loaded, tlsward::config::ConfigErrors> {
    let (config, snapshot) = Config::load(args)?;
    let kube =
        tlsward::k8s::required_client_config(&config.kube).map_err(|p| tlsward::config::ConfigErrors(vec![p]))?;
    Ok((config, snapshot, kube))
}

async fn serve(
    config: Config,
    snapshot: tlsward::snapshot::Snapshot,
    kube: Option<kube::Config>,
) -> anyhow::Result<()> {
    let client = kube
        .map(kube::Client::try_from)
        .transpose()
        .context("Kubernetes client")?;
    let running = tlsward::server::start_with(config, snapshot, client)
        .await
        .context("start-up failed")?;
    shutdown_signal().await;
    tracing::info!("shutting down: draining open connections");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
