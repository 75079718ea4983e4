//! Whether the relay an admin command works on delivers to private addresses, and the system
//! resolver `subscriptions add` checks a URL's host with (`admin::subscriptions::check_destination`).
//!
//! A deployed stack says so in its `AllowPrivateDestinations` parameter (the Lambdas' default is
//! to refuse). `relay dev` allows private destinations unless `--deny-private-destinations`, and
//! leaves its setting in the data dir for the admin commands run beside it.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use relay_core::admin::subscriptions::Destinations;
use relay_core::ports::HostResolver;
use relay_core::runtime::settings::allow_private_destinations;

use crate::args::Global;
use crate::backend::Backend;

/// The file `relay dev` writes in its data dir: `global-only` or `any`.
const DEV_SETTING_FILE: &str = "destinations";
const GLOBAL_ONLY: &str = "global-only";

/// A name that does not resolve within this is treated as not resolvable (accepted; every
/// delivery is checked again).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Records `relay dev`'s setting for the admin commands run on the same data dir.
pub fn record_dev_setting(data_dir: &Path, allow_private: bool) -> std::io::Result<()> {
    let setting = if allow_private { "any" } else { GLOBAL_ONLY };
    std::fs::write(data_dir.join(DEV_SETTING_FILE), format!("{setting}\n"))
}

/// Why deliveries of the relay `backend` serves may not reach private addresses, or `None`
/// when they may.
pub fn denied_because(backend: &Backend, global: &Global) -> Option<String> {
    match backend {
        Backend::Local(_) => {
            let recorded = std::fs::read_to_string(global.data_dir.join(DEV_SETTING_FILE)).ok()?;
            (recorded.trim() == GLOBAL_ONLY).then(|| {
                "relay dev on this data dir denies private destinations (--deny-private-destinations)"
                    .to_owned()
            })
        }
        Backend::Aws(aws) => match aws.allow_private_destinations {
            Some(true) => None,
            Some(false) => {
                Some("the stack's AllowPrivateDestinations parameter is false".to_owned())
            }
            // No stack: the functions' own variable when the operator sets it beside the
            // table's, else the Lambdas' default.
            None => match allow_private_destinations(&|name| std::env::var(name).ok()) {
                Ok(Some(true)) => None,
                _ => Some(
                    "the relay's Lambdas refuse private destinations unless the stack's AllowPrivateDestinations parameter (RELAY_ALLOW_PRIVATE_DESTINATIONS) is true"
                        .to_owned(),
                ),
            },
        },
    }
}

/// The destination rule for `subscriptions add` on `backend`.
pub fn for_backend<'a>(
    backend: &Backend,
    global: &Global,
    resolver: &'a SystemResolver,
) -> Destinations<'a> {
    match denied_because(backend, global) {
        Some(because) => Destinations::GlobalOnly { resolver, because },
        None => Destinations::Any,
    }
}

/// The operating system's resolver, bounded by `RESOLVE_TIMEOUT`.
pub struct SystemResolver;

#[async_trait]
impl HostResolver for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, String> {
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addresses)) => Ok(addresses.map(|a| a.ip()).collect()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {RESOLVE_TIMEOUT:?}")),
        }
    }
}
