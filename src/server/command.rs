//! `tlsward serve`, `tlsward proxy`, `tlsward db-proxy` and `tlsward check-config`: the checked configuration (plus the Kubernetes
//! client configuration when a feature forces it), then either its description or a running
//! server until SIGTERM or SIGINT.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{DbProxyArgs, ProxyArgs, ServeArgs};
use crate::config::{Config, ConfigErrors, DbProxyConfig, EXIT_CONFIG};
use crate::snapshot::Snapshot;

/// [`Config::load`], plus what needs the environment: the Kubernetes client configuration
/// when a kube feature is forced on (its absence is a configuration error).
type Loaded = (Config, Snapshot, Option<kube::Config>);

fn load(args: &ServeArgs) -> Result<Loaded, ConfigErrors> {
    with_kube(Config::load(args)?)
}

fn with_kube((config, snapshot): (Config, Snapshot)) -> Result<Loaded, ConfigErrors> {
    let kube = kube_config(&config.kube)?;
    Ok((config, snapshot, kube))
}

/// The Kubernetes client configuration, when a kube feature is forced on.
fn kube_config(kube: &crate::k8s::KubeSettings) -> Result<Option<kube::Config>, ConfigErrors> {
    crate::k8s::required_client_config(kube).map_err(|p| ConfigErrors(vec![p]))
}

fn config_failed(e: &ConfigErrors) -> ExitCode {
    eprint!("{e}");
    ExitCode::from(EXIT_CONFIG as u8)
}

/// Runs `check-config`: prints the effective configuration (exit 0) or every problem (64).
pub fn check_config(args: &ServeArgs) -> ExitCode {
    print_checked(load(args))
}

/// The effective configuration printed (exit 0), or every problem (64).
fn print_checked(loaded: Result<Loaded, ConfigErrors>) -> ExitCode {
    match loaded {
        Ok((config, snapshot, _)) => {
            print!("{}", config.describe(&snapshot));
            ExitCode::SUCCESS
        }
        Err(e) => config_failed(&e),
    }
}

/// Runs `serve` on its own runtime until SIGTERM or SIGINT, then drains.
pub fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    run_loaded(load(args))
}

/// Runs `proxy` as [`serve`] runs the API; with `--check`, prints its configuration instead.
pub fn proxy(args: &ProxyArgs) -> anyhow::Result<ExitCode> {
    let loaded = Config::load_proxy(args).and_then(with_kube);
    if args.check {
        return Ok(print_checked(loaded));
    }
    run_loaded(loaded)
}

fn run_loaded(loaded: Result<Loaded, ConfigErrors>) -> anyhow::Result<ExitCode> {
    let (config, snapshot, kube) = match loaded {
        Ok(x) => x,
        Err(e) => return Ok(config_failed(&e)),
    };
    block_on(serve_until_signal(config, snapshot, kube))
}

/// Runs `f` to its end on a new multi-threaded runtime.
fn block_on(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(f)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `db-proxy` until SIGTERM or SIGINT, then drains.
pub fn db_proxy(args: &DbProxyArgs) -> anyhow::Result<ExitCode> {
    let loaded = DbProxyConfig::load(args).and_then(|(config, snapshot)| {
        let kube = kube_config(&config.kube)?;
        Ok((config, snapshot, kube))
    });
    let (config, snapshot, kube) = match loaded {
        Ok(x) => x,
        Err(e) => return Ok(config_failed(&e)),
    };
    if args.check {
        print!("{}", config.describe(&snapshot));
        return Ok(ExitCode::SUCCESS);
    }
    block_on(async {
        let running = super::db_proxy::start(config, snapshot, client(kube)?)
            .await
            .context("start-up failed")?;
        stop_on_signal("shutting down: closing database sessions between transactions", || {
            running.shutdown()
        })
        .await
    })
}

fn client(kube: Option<kube::Config>) -> anyhow::Result<Option<kube::Client>> {
    kube.map(kube::Client::try_from)
        .transpose()
        .context("Kubernetes client")
}

async fn serve_until_signal(config: Config, snapshot: Snapshot, kube: Option<kube::Config>) -> anyhow::Result<()> {
    let running = super::start_with(config, snapshot, client(kube)?)
        .await
        .context("start-up failed")?;
    stop_on_signal("shutting down: draining open connections", || running.shutdown()).await
}

/// Waits for SIGTERM or SIGINT, then runs the drain `stop`, saying what it does.
async fn stop_on_signal<F: std::future::Future<Output = ()>>(
    what: &str,
    stop: impl FnOnce() -> F,
) -> anyhow::Result<()> {
    shutdown_signal().await?;
    tracing::info!("{what}");
    stop().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
