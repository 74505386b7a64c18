//! SQL text helpers for the few places where a placeholder cannot be used (identifiers).
//!
//! Values always go through `?` placeholders of [`crate::Host::query`]; schema and table names
//! read from `information_schema` go through [`quote_ident`], so a table named
//! ``a`; DROP DATABASE x; --`` stays a name.

/// Quote an identifier with backticks, doubling any backtick inside.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `schema`.`table`, both quoted.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// Whether `s` is a MariaDB GTID list such as `0-1-16` or `0-1-16,1-2-5` (empty is valid: no
/// position). Checked before a position read from a backup reaches `gtid_slave_pos`.
pub fn is_gtid_list(s: &str) -> bool {
    s.is_empty()
        || s.split(',').all(|gtid| {
            let parts: Vec<&str> = gtid.trim().split('-').collect();
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The databases no job ever restores into or optimizes: the server's own and the job queue
/// (matched by exact name, unlike the bash agent's substring match).
pub const SYSTEM_SCHEMAS: [&str; 5] = [
    "mysql",
    "performance_schema",
    "information_schema",
    "sys",
    "replication_manager_schema",
];

/// Whether `schema` is one of [`SYSTEM_SCHEMAS`] (exact, case-insensitive match).
pub fn is_system_schema(schema: &str) -> bool {
    SYSTEM_SCHEMAS
        .iter()
        .any(|s| s.eq_ignore_ascii_case(schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("t"), "`t`");
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(qualified("db", "t`"), "`db`.`t```");
    }

    #[test]
    fn gtid_lists() {
        assert!(is_gtid_list("0-1-16"));
        assert!(is_gtid_list("0-1-16,1-2-3"));
        assert!(is_gtid_list(""));
        assert!(!is_gtid_list("0-1"));
        assert!(!is_gtid_list("0-1-16'; DROP"));
    }

    #[test]
    fn system_schemas_match_exactly() {
        assert!(is_system_schema("mysql"));
        assert!(is_system_schema("MySQL"));
        assert!(!is_system_schema("mysql_app"));
        assert!(!is_system_schema("my_sys"));
    }
}
