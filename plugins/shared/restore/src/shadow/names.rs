//! The names of a restore's aside databases, and what is rewritten to point at them.
//!
//! Kept apart from the switch itself ([`super`]) because the journal
//! ([`crate::journal`]) records a [`ShadowSet`] and the switch writes the journal.

use dbjobs_kit::sql::quote_ident;
use serde::{Deserialize, Serialize};

/// The prefix of every database a restore creates besides the live ones. `#` is encoded
/// on disk (`@0023`), so no directory a user database has can look like it, and a name
/// this long with a job id in it is no one's database.
pub const PREFIX: &str = "#dbjobs";

/// The shadow database of the `k`-th database (from 0) of job `job_id`'s backup.
pub fn shadow_name(job_id: u64, k: usize) -> String {
    format!("{PREFIX}{job_id}_new{k}")
}

/// The database the live tables of the `k`-th database move to at the switch.
pub fn old_name(job_id: u64, k: usize) -> String {
    format!("{PREFIX}{job_id}_old{k}")
}

/// One database being replaced: its live name and its two aside names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swap {
    /// The database as users know it.
    pub live: String,
    /// Where the backup is built.
    pub shadow: String,
    /// Where the live tables wait after the switch until the restore verified.
    pub old: String,
}

/// Every database a restore replaces, in the backup's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowSet {
    /// The job, part of every aside name.
    pub job_id: u64,
    /// The databases.
    pub swaps: Vec<Swap>,
}

impl ShadowSet {
    /// The set of `lives`, in that order.
    pub fn new(job_id: u64, lives: Vec<String>) -> Self {
        let swaps = lives
            .into_iter()
            .enumerate()
            .map(|(k, live)| Swap {
                live,
                shadow: shadow_name(job_id, k),
                old: old_name(job_id, k),
            })
            .collect();
        ShadowSet { job_id, swaps }
    }

    /// The shadow name of live database `live`, if the set replaces it.
    pub fn shadow_of(&self, live: &str) -> Option<&str> {
        self.swaps
            .iter()
            .find(|s| s.live == live)
            .map(|s| s.shadow.as_str())
    }

    /// The live names.
    pub fn lives(&self) -> Vec<String> {
        self.swaps.iter().map(|s| s.live.clone()).collect()
    }

    /// `CREATE TABLE` text with its foreign keys into databases of the set pointed at their
    /// shadows (`REFERENCES `db`.`t``), so that they follow them at the switch.
    pub fn rewrite_references(&self, create: &str) -> String {
        let mut out = create.to_string();
        for s in &self.swaps {
            let from = format!("REFERENCES {}.", quote_ident(&s.live));
            let to = format!("REFERENCES {}.", quote_ident(&s.shadow));
            out = out.replace(&from, &to);
        }
        out
    }
}

/// The options (character set, collation, comment) of a `SHOW CREATE DATABASE` text: what
/// follows the name.
pub fn database_options(create: &str) -> &str {
    let rest = create.trim_start();
    let rest = rest
        .get(..16)
        .filter(|p| p.eq_ignore_ascii_case("CREATE DATABASE "))
        .map_or(rest, |_| &rest[16..]);
    let rest = rest
        .trim_start()
        .strip_prefix("/*!32312 IF NOT EXISTS*/")
        .unwrap_or(rest)
        .trim_start();
    let Some(body) = rest.strip_prefix('`') else {
        return "";
    };
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '`' {
            if chars.peek().map(|(_, c)| *c) == Some('`') {
                chars.next();
                continue;
            }
            return body[i + 1..].trim();
        }
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aside_names_carry_the_job_and_the_position() {
        let set = ShadowSet::new(12, vec!["shop".into(), "my-db é".into()]);
        assert_eq!(set.swaps[1].shadow, "#dbjobs12_new1");
        assert_eq!(set.swaps[1].old, "#dbjobs12_old1");
        assert_eq!(set.shadow_of("shop"), Some("#dbjobs12_new0"));
        assert_eq!(set.shadow_of("other"), None);
    }

    #[test]
    fn cross_database_references_point_at_the_shadows() {
        let set = ShadowSet::new(3, vec!["a".into(), "b`x".into()]);
        let create = "CREATE TABLE `c` (\n  `p` int,\n  CONSTRAINT `fk` FOREIGN KEY (`p`) REFERENCES `b``x`.`parent` (`id`),\n  CONSTRAINT `fk2` FOREIGN KEY (`p`) REFERENCES `parent` (`id`),\n  CONSTRAINT `fk3` FOREIGN KEY (`p`) REFERENCES `elsewhere`.`t` (`id`)\n)";
        let out = set.rewrite_references(create);
        assert!(out.contains("REFERENCES `#dbjobs3_new1`.`parent`"), "{out}");
        assert!(out.contains("REFERENCES `parent` (`id`)"));
        assert!(out.contains("REFERENCES `elsewhere`.`t`"));
    }

    #[test]
    fn database_options_follow_the_name() {
        assert_eq!(
            database_options("CREATE DATABASE `a``b` /*!40100 DEFAULT CHARACTER SET latin1 */"),
            "/*!40100 DEFAULT CHARACTER SET latin1 */"
        );
        assert_eq!(
            database_options(
                "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `x` /*!40100 COLLATE utf8mb4_bin */"
            ),
            "/*!40100 COLLATE utf8mb4_bin */"
        );
        assert_eq!(database_options("CREATE DATABASE `x`"), "");
        assert_eq!(database_options(""), "");
    }
}
