//! The result of a successful restore: one line that says what was done, then notes.
//!
//! replication-manager shows the row's `result` to the operator, and its tests (and ours)
//! look for phrases in it ("gtid_slave_pos=...", "replication started"), so both restore
//! methods write it the same way: a headline, then each note after `; `.

/// A result being written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    headline: String,
    notes: Vec<String>,
}

impl Summary {
    /// A result that starts with `headline`.
    pub fn new(headline: impl Into<String>) -> Self {
        Summary {
            headline: headline.into(),
            notes: Vec::new(),
        }
    }

    /// Add a note.
    pub fn note(&mut self, note: impl Into<String>) -> &mut Self {
        self.notes.push(note.into());
        self
    }

    /// Add notes, in order.
    pub fn notes(&mut self, notes: impl IntoIterator<Item = String>) -> &mut Self {
        self.notes.extend(notes);
        self
    }

    /// The text: the headline, then `; <note>` for each note.
    pub fn text(&self) -> String {
        let mut out = self.headline.clone();
        for n in &self.notes {
            out.push_str("; ");
            out.push_str(n);
        }
        out
    }
}

/// `1 session`, `3 sessions`.
pub fn count(n: usize, singular: &str) -> String {
    format!("{n} {singular}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headline_then_notes() {
        let mut s = Summary::new("reseed done");
        assert_eq!(s.text(), "reseed done");
        s.note("replication started")
            .notes([count(1, "session"), count(3, "session")]);
        assert_eq!(
            s.text(),
            "reseed done; replication started; 1 session; 3 sessions"
        );
    }
}
