//! The `tlsward` binary: parse the command line, set up logging and the crypto provider, and
//! dispatch to the subcommand's module (each returns its exit code; 64 for configuration
//! errors).

use std::process::ExitCode;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use tlsward::cli::{CertsCommand, Cli, Command, TokenCommand};

fn init_tracing(filter: &str, format: &str) {
    let filter = tlsward::logs::filter(filter);
    // Colours only for a person at a terminal: a pipe (kubectl logs, a file) gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(&e),
    };
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

/// What clap says instead of running: `--help` and `--version` exit 0; a usage error (an
/// unknown flag, a flag another command reads, a bad value) exits 64 (EX_USAGE), as a
/// configuration error does, in every command.
fn usage(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::from(tlsward::config::EXIT_CONFIG as u8)
    } else {
        ExitCode::SUCCESS
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::CheckConfig(args) => Ok(tlsward::server::command::check_config(&args)),
        Command::Serve(args) if args.check => Ok(tlsward::server::command::check_config(&args)),
        Command::Serve(args) => tlsward::server::command::serve(&args),
        Command::Proxy(args) => tlsward::server::command::proxy(&args),
        Command::DbProxy(args) => tlsward::server::command::db_proxy(&args),
        Command::Scan(a) => tlsward::scan::command::run(&a),
        Command::Certs {
            command: CertsCommand::Dev(a),
        } => {
            println!("{}", tlsward::pki::command::dev(a)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            command: TokenCommand::Issue(a),
        } => Ok(tlsward::token::command::issue(&a)),
        Command::Token {
            command: TokenCommand::NewKey(a),
        } => {
            println!("{}", tlsward::token::command::new_key(&a)?.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
