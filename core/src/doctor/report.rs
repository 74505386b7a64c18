//! What `dbjobs doctor` found: one [`Check`] per thing looked at, printed one line each.

use std::fmt;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Ready.
    Ok,
    /// Works, but something deserves a look (a job may fail later, e.g. a log not there yet).
    Warn,
    /// A job that depends on it will fail: the line says what to do.
    Fail,
}

impl Status {
    /// `ok`, `warn` or `fail`, as printed and in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One thing checked, e.g. `privileges` or `plugin-dir /usr/lib/dbjobs/plugins`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked; stable words an operator can grep for.
    pub name: String,
    /// How it came out.
    pub status: Status,
    /// What was found, in a sentence.
    pub message: String,
    /// What to do about it (always given for a failure).
    pub fix: Option<String>,
}

impl Check {
    /// A check that passed.
    pub fn ok(name: impl Into<String>, message: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            status: Status::Ok,
            message: message.into(),
            fix: None,
        }
    }

    /// A check that passed with a caveat, and what to do about it.
    pub fn warn(
        name: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check::with_fix(Status::Warn, name.into(), message.into(), fix.into())
    }

    /// A check that failed, and what to do about it.
    pub fn fail(
        name: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check::with_fix(Status::Fail, name.into(), message.into(), fix.into())
    }

    /// A check that needs the server, when there is no connection (the connection line
    /// says why).
    pub fn not_connected(name: impl Into<String>) -> Self {
        Check::warn(
            name,
            "not checked: no connection",
            "fix the connection first",
        )
    }

    fn with_fix(status: Status, name: String, message: String, fix: String) -> Self {
        Check {
            name,
            status,
            message,
            fix: Some(fix),
        }
    }

    /// The check as JSON: `{"check", "status", "message", "fix"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "check": self.name,
            "status": self.status.as_str(),
            "message": self.message,
            "fix": self.fix,
        })
    }
}

impl fmt::Display for Check {
    /// One line: `fail  privileges: missing RELOAD (...); fix: GRANT ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<4}  {}: {}",
            self.status.as_str(),
            self.name,
            one_line(&self.message)
        )?;
        if let Some(fix) = &self.fix {
            write!(f, "; fix: {}", one_line(fix))?;
        }
        Ok(())
    }
}

/// Messages come from errors of other modules, which may span lines; a report keeps one line
/// per check so it can be read and grepped.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every check, in the order they ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// Add a check.
    pub fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Add several checks.
    pub fn extend(&mut self, checks: impl IntoIterator<Item = Check>) {
        self.checks.extend(checks);
    }

    /// Whether any check failed (the command then exits 1).
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// The report as text, one line per check and a last line counting them.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            out.push_str(&check.to_string());
            out.push('\n');
        }
        let count = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        out.push_str(&format!(
            "{} ok, {} warn, {} fail\n",
            count(Status::Ok),
            count(Status::Warn),
            count(Status::Fail)
        ));
        out
    }

    /// The report as JSON: `{"ok": bool, "checks": [...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": !self.failed(),
            "checks": self.checks.iter().map(Check::to_json).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_is_one_line_with_its_fix() {
        let c = Check::fail(
            "privileges",
            "missing RELOAD\n(for errorlog)",
            "GRANT RELOAD",
        );
        assert_eq!(
            c.to_string(),
            "fail  privileges: missing RELOAD (for errorlog); fix: GRANT RELOAD"
        );
        assert_eq!(
            Check::ok("connection", "fine").to_string(),
            "ok    connection: fine"
        );
    }

    #[test]
    fn one_failure_fails_the_report() {
        let mut r = Report::default();
        r.push(Check::ok("a", "x"));
        r.push(Check::warn("b", "y", "z"));
        assert!(!r.failed());
        assert!(r.to_text().ends_with("1 ok, 1 warn, 0 fail\n"));
        r.push(Check::fail("c", "x", "y"));
        assert!(r.failed());
        assert_eq!(r.to_json()["ok"], false);
        assert_eq!(r.to_json()["checks"][2]["fix"], "y");
    }
}
