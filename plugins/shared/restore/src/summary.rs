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

/// How many objects of each kind a restore brought, for its headline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectCounts {
    /// Views.
    pub views: usize,
    /// Triggers.
    pub triggers: usize,
    /// Procedures and functions.
    pub routines: usize,
    /// Events.
    pub events: usize,
    /// Sequences.
    pub sequences: usize,
}

impl ObjectCounts {
    /// `4 views, 3 triggers, 3 routines, 2 events, 1 sequence`.
    pub fn text(&self) -> String {
        [
            (self.views, "view"),
            (self.triggers, "trigger"),
            (self.routines, "routine"),
            (self.events, "event"),
            (self.sequences, "sequence"),
        ]
        .map(|(n, what)| count(n, what))
        .join(", ")
    }
}

/// The note about MEMORY tables (`db.table` names): a physical backup has no data file of
/// theirs, so they come back empty, as the source's would after a restart.
pub fn memory_tables_note(tables: &[String]) -> Option<String> {
    (!tables.is_empty()).then(|| {
        format!(
            "MEMORY tables restored empty, as after a restart: {}",
            tables.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_and_memory_tables() {
        let c = ObjectCounts {
            views: 4,
            triggers: 1,
            routines: 0,
            events: 2,
            sequences: 1,
        };
        assert_eq!(
            c.text(),
            "4 views, 1 trigger, 0 routines, 2 events, 1 sequence"
        );
        assert_eq!(memory_tables_note(&[]), None);
        assert_eq!(
            memory_tables_note(&["a.m".into(), "b.n".into()]).unwrap(),
            "MEMORY tables restored empty, as after a restart: a.m, b.n"
        );
    }

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
