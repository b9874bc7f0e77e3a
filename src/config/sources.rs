//! The TLS-source, token and reload groups → the reload task's [`ReloadSettings`] (which files,
//! how changes are noticed) and the first [`Snapshot`] read from them.

use std::sync::Arc;
use std::time::Duration;

use super::flags::{flag, need};
use super::{ReloadSettings, Shared};
use crate::cli::ReloadArgs;
use crate::db::dsn::DbTarget;
use crate::snapshot::{Snapshot, Sources};

/// The sources as given, for checking the materials when a required directory is missing.
fn given_sources<'a>(a: &Shared<'a>, db: Option<&'a DbTarget>) -> crate::snapshot::GivenSources<'a> {
    let (t, tokens) = (a.tls, a.tokens);
    crate::snapshot::GivenSources {
        tls_dir: t.tls_dir.as_deref(),
        token_key_dir: tokens.token_key_dir.as_deref(),
        policy_file: t.policy_file.as_deref(),
        client_ca_dir: t.client_ca_dir.as_deref(),
        expect_sans: &t.expect_sans,
        db,
    }
}

/// How changes are noticed (the sources are filled in by the caller). Checked before any
/// required source is, so that its problem is reported with theirs.
pub(super) fn reload_triggers(a: &ReloadArgs, p: &mut Vec<String>) -> ReloadSettings {
    if a.reload_interval < Duration::from_millis(100) {
        p.push(format!("{} is below 100ms; use e.g. 30s", flag("reload_interval")));
    }
    ReloadSettings {
        sources: Sources::database(None),
        file_watch: a.file_watch,
        reload_interval: a.reload_interval,
        expiry_warning: a.expiry_warning,
    }
}

/// The reload settings: the checked sources (`None` when a required directory is not set,
/// which is reported) and how changes are noticed.
pub(super) fn reload_settings(
    a: &Shared<'_>,
    db: Option<&Arc<DbTarget>>,
    tokens_required: bool,
    p: &mut Vec<String>,
) -> Option<ReloadSettings> {
    let triggers = reload_triggers(a.reload, p);
    let tls = a.tls;
    let tls_dir = need(
        &tls.tls_dir,
        "tls_dir",
        "point it at the directory with tls.crt and tls.key",
        p,
    );
    let token_key_dir = if tokens_required {
        Some(need(
            &a.tokens.token_key_dir,
            "token_key_dir",
            "point it at the directory of token signing keys",
            p,
        )?)
    } else {
        a.tokens.token_key_dir.clone()
    };
    Some(ReloadSettings {
        sources: Sources {
            policy_file: tls.policy_file.clone(),
            client_ca_dir: tls.client_ca_dir.clone(),
            expect_sans: tls.expect_sans.clone(),
            db: db.cloned(),
            token_key_dir,
            ..Sources::new(tls_dir?)
        },
        ..triggers
    })
}

/// The first snapshot, or (when a required directory is missing) the problems of every
/// material that is given.
pub(super) fn first_snapshot(
    a: &Shared<'_>,
    reload: Option<&ReloadSettings>,
    target: Option<&DbTarget>,
    p: &mut Vec<String>,
) -> Option<Snapshot> {
    let disk = crate::files::Files::disk();
    match reload {
        Some(r) => Snapshot::load(&r.sources, &disk, 1)
            .map_err(|e| p.extend(e.iter().map(ToString::to_string)))
            .ok(),
        None => {
            let given = given_sources(a, target);
            p.extend(
                crate::snapshot::check_given(&given, &disk)
                    .iter()
                    .map(ToString::to_string),
            );
            None
        }
    }
}
