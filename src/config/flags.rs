//! How a configuration problem names its argument: `--flag (ENV)` from the clap definitions of
//! `serve`, `proxy` and `db-proxy`, and the small checks every group shares.

use std::time::Duration;

use crate::cli::{ProxyArgs, ServeArgs};

/// `--flag (ENV)` of an argument of `serve`, `proxy` or `db-proxy`, from its clap definition
/// (`id` is the field name).
pub fn flag(id: &str) -> String {
    static COMMANDS: std::sync::LazyLock<[clap::Command; 3]> = std::sync::LazyLock::new(|| {
        [
            <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve")),
            <ProxyArgs as clap::Args>::augment_args(clap::Command::new("proxy")),
            <crate::cli::DbProxyArgs as clap::Args>::augment_args(clap::Command::new("db-proxy")),
        ]
    });
    let Some(arg) = COMMANDS
        .iter()
        .find_map(|c| c.get_arguments().find(|a| a.get_id() == id))
    else {
        return id.to_string();
    };
    let long = arg.get_long().map_or_else(|| id.to_string(), |l| format!("--{l}"));
    match arg.get_env() {
        Some(env) => format!("{long} ({})", env.to_string_lossy()),
        None => long,
    }
}

/// `--flag VALUE (ENV=VALUE)`: an argument given a value.
pub(super) fn flag_is(id: &str, value: &str) -> String {
    match flag(id).split_once(" (") {
        Some((long, env)) => format!("{long} {value} ({}={value})", env.trim_end_matches(')')),
        None => format!("{} {value}", flag(id)),
    }
}

pub(super) fn need<T: Clone>(v: &Option<T>, id: &str, fix: &str, problems: &mut Vec<String>) -> Option<T> {
    if v.is_none() {
        problems.push(format!("{} is not set; {fix}", flag(id)));
    }
    v.clone()
}

pub(super) fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// Each duration (with its argument id) that is 0, a problem.
pub(super) fn check_positive(durations: &[(Duration, &str)], p: &mut Vec<String>) {
    for (d, id) in durations {
        if d.is_zero() {
            p.push(format!("{} is 0; give a positive duration such as 3s", flag(id)));
        }
    }
}
