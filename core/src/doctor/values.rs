//! Does every configured `[dbjobs]` value fit its declaration, and is every name one that
//! the host or a loaded plugin declares? The same check a run makes at start-up
//! ([`SettingCatalog::check`]): what would stop a run fails here.

use super::node::Node;
use super::report::Check;
use crate::setting_catalog::SettingCatalog;

/// One line, and one warning line per name a refused plugin may declare.
pub fn check(node: &Node<'_>) -> Vec<Check> {
    let catalog = SettingCatalog::of(node.registry);
    match catalog.check(node.settings, &node.registry.refused) {
        Ok(warnings) => {
            let count = node.settings.iter().count();
            let mut checks = vec![Check::ok(
                "settings",
                format!("{count} [dbjobs] setting(s) configured, each declared and valid"),
            )];
            checks.extend(warnings.into_iter().map(|w| {
                Check::warn(
                    "settings",
                    w,
                    "fix the refused plugin file (see its plugin line), or remove the setting",
                )
            }));
            checks
        }
        Err(e) => vec![Check::fail(
            "settings",
            e.message,
            e.help
                .unwrap_or_else(|| "fix the setting in [dbjobs]".into()),
        )],
    }
}
