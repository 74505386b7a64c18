//! The plan of a parallel logical restore: which byte ranges of a staged `mariadb-dump` can
//! be applied by several client sessions at once, and which must stay in one session, in
//! dump order.
//!
//! One client session is the bottleneck of a logical restore: the server parses and inserts
//! a session's statements on one core. The table sections of a dump are independent of each
//! other (the dump's header turns `FOREIGN_KEY_CHECKS` and `UNIQUE_CHECKS` off, and each
//! section drops, creates and fills one table, then creates its triggers), so they can be fed
//! to several sessions. Everything else keeps its order. A `mariadb-dump` of 10.11 reads:
//!
//! ```text
//! header: SET statements (names, time zone, sql_mode, checks), CHANGE MASTER, comments
//! -- Current Database: `a`          DROP/CREATE DATABASE, USE
//! -- Table structure for table `t`  DROP/CREATE TABLE, -- Dumping data, INSERTs, triggers
//! -- Temporary table structure for view `v`   (a placeholder view)
//! -- Dumping events / routines for database 'a'
//! -- Current Database: `b` ...
//! -- Current Database: `a`          USE, then -- Final view structure for view `v`
//! -- The deferred gtid setting ...  SET GLOBAL gtid_slave_pos, the trailing SETs
//! ```
//!
//! The plan has three phases:
//! * [`DumpPlan::first`], one session, in dump order: the header, the statements of each
//!   database (`CREATE DATABASE`, `USE`), and the whole first section of a system schema
//!   (`mysql`'s sections share session variables such as `@save_log_output` across tables);
//! * [`DumpPlan::units`], several sessions: the table sections, grouped so that tables linked
//!   by a foreign key stay in one session (their DDL would otherwise wait on each other's
//!   metadata locks), each preceded by its database's `USE` line; every session starts with
//!   [`DumpPlan::session_header`] (the header's `/*!...*/` SET statements) so it has the same
//!   session state as the single-session replay;
//! * [`DumpPlan::rest`], one session after the tables, in dump order: placeholder and final
//!   views (views need their base tables), routines, events, the position and trailing SETs,
//!   each run preceded by its database's `USE` line.
//!
//! The queue filter ([`DumpFilter`]) runs over every line while the plan is built, in dump
//! order as in the single-session replay: a line it drops is in no range. The plan refers to
//! the staged file by byte ranges only; it holds no SQL in memory but the `USE` lines' ranges.
//!
//! When the dump does not look like this (no `-- Current Database:` marker: `--compact` or
//! `--skip-comments` dumps, a single database without `--databases`, a section ending with a
//! `DELIMITER` other than `;`), or its plan would record more than [`PLAN_BUDGET`] bytes,
//! [`PlanBuilder::finish`] says why and the restore falls back to one session. Once the
//! builder knows that, it forgets what it recorded and ignores the rest of the dump, so its
//! memory is bounded and its time linear whatever the dump.

use std::collections::HashMap;

use crate::logical::filter::{newline, DumpFilter, MARKER_MAX};
use dbjobs_kit::sql::is_system_schema;

/// The most bytes a plan may record (spans, names, foreign-key references, counted as the
/// builder records them). A plan costs about 200 bytes per table, so this holds well over
/// 100 000 tables; a dump that needs more (or a crafted one: millions of table markers or
/// header lines) is applied in one session instead, so the builder's heap stays under a few
/// times this whatever the dump ([`PlanBuilder::finish`] then says why).
pub const PLAN_BUDGET: usize = 32 << 20;

/// How much of a line [`PlanBuilder::feed`] keeps while the rest of it streams by: enough to
/// tell a line longer than [`MARKER_MAX`] (whose text nothing looks at) from a shorter one.
const HEAD: usize = MARKER_MAX + 1;

/// A run of consecutive kept lines of the staged dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Byte offset of the first line.
    pub start: u64,
    /// Byte offset just after the last line (its newline included).
    pub end: u64,
    /// The dump's line number (1-based) of the first line, to report errors by dump line.
    pub first_line: u64,
    /// How many lines the span holds.
    pub lines: u64,
}

impl Span {
    /// Bytes in the span.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the span is empty (never the case for spans of a plan).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Work fed to one session in one go: spans in the order they are fed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unit {
    /// The spans, in feeding order.
    pub spans: Vec<Span>,
    /// Names of the tables in the unit (`db.table`), for logs and tests.
    pub tables: Vec<String>,
}

impl Unit {
    /// Bytes of SQL in the unit: its weight when the units are scheduled.
    pub fn bytes(&self) -> u64 {
        self.spans.iter().map(Span::len).sum()
    }
}

/// The plan of a parallel restore (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpPlan {
    /// The header's SET statements, replayed first in every session of the table and the
    /// final phases.
    pub session_header: Vec<Span>,
    /// Phase A, one session: header, database statements, system schemas.
    pub first: Vec<Span>,
    /// Phase B, several sessions: the table units, biggest first.
    pub units: Vec<Unit>,
    /// Phase C, one session: views, routines, events, position, trailing SETs.
    pub rest: Vec<Span>,
    /// The filter after the whole dump went through it (position found, lines skipped).
    pub filter: DumpFilter,
    /// Lines the filter dropped.
    pub skipped_lines: u64,
    /// Bytes of the lines the filter kept (each applied exactly once, header SETs aside).
    pub kept_bytes: u64,
}

/// What the section being read is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Header,
    /// The first `-- Current Database:` section of database `db` (index into `dbs`).
    Database(usize),
    /// A table section of database `db`.
    Table {
        db: usize,
        name: String,
    },
    /// Anything else, in database `db` (None before any database).
    Other(Option<usize>),
}

#[derive(Clone, Debug, Default)]
struct Db {
    name: String,
    /// The span of its `USE` line, from its first section.
    use_line: Option<Span>,
    /// Whether a later `-- Current Database:` section of it was seen (final views).
    revisited: bool,
}

/// A table section read, before grouping.
struct TableSection {
    db: usize,
    name: String,
    spans: Vec<Span>,
    /// `(database, table)` names its foreign keys reference.
    references: Vec<(String, String)>,
}

/// Builds a [`DumpPlan`] from the dump, fed in order: line by line ([`PlanBuilder::line`]) or
/// in chunks of any size ([`PlanBuilder::feed`], as the receive decompresses the stream), so
/// the plan needs no read of its own of the staged file.
pub struct PlanBuilder {
    filter: DumpFilter,
    offset: u64,
    line_no: u64,
    kind: Kind,
    spans: Vec<Span>,
    references: Vec<(String, String)>,
    dbs: Vec<Db>,
    db_index: HashMap<String, usize>,
    current_db: Option<usize>,
    delimiter: String,
    plan: DumpPlan,
    tables: Vec<TableSection>,
    /// The database of the last `rest` span, so a `USE` is replayed when it changes.
    rest_db: Option<usize>,
    /// Why the dump is not recognised, once known.
    refused: Option<String>,
    /// Whether what was recorded was dropped after the refusal.
    forgotten: bool,
    /// Bytes recorded so far, against [`PLAN_BUDGET`].
    recorded: usize,
    /// The first bytes (at most [`HEAD`]) of the line [`PlanBuilder::feed`] is in the middle of.
    partial: Vec<u8>,
    /// The length so far of that line (0: no line begun).
    partial_len: u64,
}

impl Default for PlanBuilder {
    fn default() -> Self {
        PlanBuilder {
            filter: DumpFilter::default(),
            offset: 0,
            line_no: 0,
            kind: Kind::Header,
            spans: Vec::new(),
            references: Vec::new(),
            dbs: Vec::new(),
            db_index: HashMap::new(),
            current_db: None,
            delimiter: ";".into(),
            plan: DumpPlan::default(),
            tables: Vec::new(),
            rest_db: None,
            refused: None,
            forgotten: false,
            recorded: 0,
            partial: Vec::new(),
            partial_len: 0,
        }
    }
}

/// The name in a marker's backquotes or quotes: `` `a` `` or `'a'`.
fn marker_name(rest: &str) -> String {
    let r = rest.trim();
    let r = r
        .strip_prefix('`')
        .and_then(|s| s.strip_suffix('`'))
        .or_else(|| r.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(r);
    r.replace("``", "`")
}

/// The `(db, table)` pairs of `REFERENCES `x`` or `REFERENCES `d`.`x`` in a line.
fn references_in(line: &str, db: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(p) = rest.find("REFERENCES `") {
        rest = &rest[p + "REFERENCES ".len()..];
        let mut names = Vec::new();
        let mut r = rest;
        while let Some(body) = r.strip_prefix('`') {
            let Some(end) = body.find('`') else { break };
            names.push(body[..end].to_string());
            r = &body[end + 1..];
            match r.strip_prefix('.') {
                Some(more) => r = more,
                None => break,
            }
        }
        match names.len() {
            1 => out.push((db.to_string(), names.remove(0))),
            n if n >= 2 => out.push((names[0].clone(), names[1].clone())),
            _ => {}
        }
        rest = r;
    }
    out
}

impl PlanBuilder {
    /// Feed the next line of the dump (with its newline, if it has one).
    pub fn line(&mut self, line: &[u8]) {
        self.line_head(line, line.len() as u64);
    }

    /// Feed the next bytes of the dump, cut anywhere (a line may span many chunks, or a
    /// chunk hold many lines): what the receive calls on each decompressed buffer. Of a line
    /// that spans chunks only its first `MARKER_MAX + 1` (4097) bytes are kept (the line
    /// logic looks at no more), so a data line of many MiB costs no memory.
    /// [`finish`](Self::finish) takes a last line without a newline.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        if self.refused.is_some() {
            // Nothing more to plan: the rest of the dump is not even split into lines.
            self.forget();
            return;
        }
        while !chunk.is_empty() {
            let (piece, ends) = match newline(chunk) {
                Some(i) => (&chunk[..=i], true),
                None => (chunk, false),
            };
            chunk = &chunk[piece.len()..];
            if ends && self.partial_len == 0 {
                // A whole line within the chunk, the common case: no copy.
                self.line(piece);
                continue;
            }
            let room = HEAD.saturating_sub(self.partial.len());
            self.partial
                .extend_from_slice(&piece[..piece.len().min(room)]);
            self.partial_len += piece.len() as u64;
            if ends {
                self.end_partial();
            }
        }
    }

    /// Hand the line [`feed`](Self::feed) gathered to the line logic.
    fn end_partial(&mut self) {
        let head = std::mem::take(&mut self.partial);
        self.line_head(&head, self.partial_len);
        self.partial = head;
        self.partial.clear();
        self.partial_len = 0;
    }

    /// The line logic, for a line of `len` bytes (with its newline, if it has one) of which
    /// `head` is the whole when `len` is at most [`MARKER_MAX`], else at least the first
    /// [`HEAD`] bytes: the text of longer lines is never looked at, only their first byte.
    fn line_head(&mut self, head: &[u8], len: u64) {
        debug_assert!(head.len() as u64 == len || head.len() >= HEAD);
        let start = self.offset;
        self.offset += len;
        self.line_no += 1;
        if self.refused.is_some() {
            self.forget();
            return;
        }
        // Data lines (`(1,'a'),` rows and `INSERT INTO` heads) are most of a dump and never
        // markers, USE, DELIMITER, header or CONSTRAINT lines: skip the text work for them.
        let short = len <= MARKER_MAX as u64 && !matches!(head.first(), Some(b'(' | b'I'));
        if short {
            let text = String::from_utf8_lossy(head);
            let t = text.trim();
            if t.starts_with("-- ") {
                self.marker(t);
            } else if let Some(d) = t.strip_prefix("DELIMITER ") {
                self.delimiter = d.trim().to_string();
            } else if let Kind::Table { db, .. } = &self.kind {
                if t.contains("REFERENCES `") {
                    let db = self.dbs[*db].name.clone();
                    for (d, r) in references_in(t, &db) {
                        self.record(2 * size_of::<String>() + d.len() + r.len());
                        self.references.push((d, r));
                    }
                }
            }
        }
        if !self.filter.keep_head(head, len) {
            self.plan.skipped_lines += 1;
            return;
        }
        self.plan.kept_bytes += len;
        let lone = Span {
            start,
            end: self.offset,
            first_line: self.line_no,
            lines: 1,
        };
        match self.spans.last_mut() {
            Some(s) if s.end == start => {
                s.end = self.offset;
                s.lines += 1;
            }
            _ => {
                self.record(size_of::<Span>());
                self.spans.push(lone);
            }
        }
        if short && matches!(self.kind, Kind::Database(_) | Kind::Header) {
            let text = String::from_utf8_lossy(head);
            let t = text.trim();
            if let Kind::Database(db) = self.kind {
                if t.starts_with("USE ") && self.dbs[db].use_line.is_none() {
                    self.dbs[db].use_line = Some(lone);
                }
            }
            if self.kind == Kind::Header && t.starts_with("/*") {
                self.record(size_of::<Span>());
                self.plan.session_header.push(lone);
            }
        }
    }

    /// A `-- ` comment line: a section boundary when it is one of mariadb-dump's markers.
    fn marker(&mut self, t: &str) {
        if let Some(rest) = t.strip_prefix("-- Current Database: ") {
            self.close();
            let name = marker_name(rest);
            match self.db_index.get(&name) {
                Some(&i) => {
                    self.current_db = Some(i);
                    self.dbs[i].revisited = true;
                    // A later section of a database (final views): its own USE line, so
                    // `rest` needs no replayed one.
                    self.kind = Kind::Other(Some(i));
                    self.rest_db = Some(i);
                }
                None => {
                    let i = self.dbs.len();
                    self.record(size_of::<Db>() + size_of::<(String, usize)>() + 2 * name.len());
                    self.dbs.push(Db {
                        name: name.clone(),
                        ..Db::default()
                    });
                    self.db_index.insert(name, i);
                    self.current_db = Some(i);
                    self.kind = Kind::Database(i);
                }
            }
        } else if let Some(rest) = t.strip_prefix("-- Table structure for table ") {
            self.close();
            self.start_table(marker_name(rest));
        } else if let Some(rest) = t.strip_prefix("-- Dumping data for table ") {
            let name = marker_name(rest);
            if !matches!(&self.kind, Kind::Table { name: n, .. } if *n == name) {
                self.close();
                self.start_table(name);
            }
        } else if [
            "-- Temporary table structure for view ",
            "-- Temporary view structure for view ",
            "-- Final view structure for view ",
            "-- Dumping routines for database ",
            "-- Dumping events for database ",
            "-- The deferred gtid setting",
            "-- Dump completed",
        ]
        .iter()
        .any(|m| t.starts_with(m))
        {
            self.close();
            self.kind = Kind::Other(self.current_db);
        }
    }

    fn start_table(&mut self, name: String) {
        match self.current_db {
            Some(db) => self.kind = Kind::Table { db, name },
            None => {
                self.refuse(format!(
                    "table `{name}` comes before any `-- Current Database:` marker (a dump made without --databases)"
                ));
                self.kind = Kind::Other(None);
            }
        }
    }

    /// Count `bytes` more recorded; past [`PLAN_BUDGET`], the dump is not planned.
    fn record(&mut self, bytes: usize) {
        self.recorded += bytes;
        if self.recorded > PLAN_BUDGET {
            self.refuse(format!(
                "planning it would take more than {} MiB of memory ({} table sections and {} databases by line {}), more than a parallel apply is worth",
                PLAN_BUDGET >> 20,
                self.tables.len(),
                self.dbs.len(),
                self.line_no
            ));
        }
    }

    /// The dump is not planned, for `why` (the first reason is kept).
    fn refuse(&mut self, why: String) {
        self.refused.get_or_insert(why);
    }

    /// Drop everything recorded, once the dump is refused: from then on the builder ignores
    /// what it is fed, in constant memory.
    fn forget(&mut self) {
        if !self.forgotten {
            self.forgotten = true;
            self.spans = Vec::new();
            self.references = Vec::new();
            self.tables = Vec::new();
            self.dbs = Vec::new();
            self.db_index = HashMap::new();
            self.plan = DumpPlan::default();
            self.kind = Kind::Other(None);
            self.current_db = None;
            self.rest_db = None;
        }
    }

    /// End the current section: file its spans in the phase it belongs to.
    fn close(&mut self) {
        if self.delimiter != ";" {
            self.refuse(format!(
                "a section ends at line {} with DELIMITER {} in force",
                self.line_no, self.delimiter
            ));
        }
        if self.refused.is_some() {
            return; // nothing more is recorded; the next line forgets the rest
        }
        let spans = std::mem::take(&mut self.spans);
        let references = std::mem::take(&mut self.references);
        let system =
            |b: &Self, db: Option<usize>| db.is_some_and(|i| is_system_schema(&b.dbs[i].name));
        match self.kind.clone() {
            Kind::Header | Kind::Database(_) => self.plan.first.extend(spans),
            Kind::Table { db, name } => {
                if system(self, Some(db)) {
                    self.plan.first.extend(spans);
                } else if !spans.is_empty() {
                    self.record(size_of::<TableSection>() + name.len());
                    // Kept until `finish`: no room to spare (a section has one to a few
                    // spans, and a growing vector would hold four).
                    let (mut spans, mut references) = (spans, references);
                    spans.shrink_to_fit();
                    references.shrink_to_fit();
                    self.tables.push(TableSection {
                        db,
                        name,
                        spans,
                        references,
                    });
                }
            }
            Kind::Other(db) => {
                // The first section of a system schema stays with its database statements.
                let first_section = db.is_some_and(|i| !self.dbs[i].revisited);
                if system(self, db) && first_section {
                    self.plan.first.extend(spans);
                } else if !spans.is_empty() {
                    if let Some(i) = db {
                        if self.rest_db != Some(i) {
                            if let Some(u) = self.dbs[i].use_line {
                                self.record(size_of::<Span>());
                                self.plan.rest.push(u);
                            }
                            self.rest_db = Some(i);
                        }
                    }
                    self.plan.rest.extend(spans);
                }
            }
        }
    }

    /// The plan, or why the dump is not one whose tables can be applied in parallel.
    pub fn finish(mut self) -> Result<DumpPlan, String> {
        if self.partial_len > 0 {
            self.end_partial(); // a last line without a newline
        }
        self.close();
        if let Some(why) = self.refused {
            return Err(why);
        }
        if self.dbs.is_empty() {
            return Err(
                "no `-- Current Database:` marker (a --compact or --skip-comments dump, or one database without --databases)"
                    .into(),
            );
        }
        // Group tables linked by foreign keys (union-find over `db.table`).
        let key = |db: &str, t: &str| format!("{db}.{t}");
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, t) in self.tables.iter().enumerate() {
            index.insert(key(&self.dbs[t.db].name, &t.name), i);
        }
        let mut parent: Vec<usize> = (0..self.tables.len()).collect();
        fn root(p: &mut [usize], mut i: usize) -> usize {
            while p[i] != i {
                p[i] = p[p[i]];
                i = p[i];
            }
            i
        }
        for (i, t) in self.tables.iter().enumerate() {
            for (d, r) in &t.references {
                if let Some(&j) = index.get(&key(d, r)) {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    if a != b {
                        parent[a] = b;
                    }
                }
            }
        }
        let mut groups: HashMap<usize, Unit> = HashMap::new();
        let mut order = Vec::new();
        for (i, t) in self.tables.iter().enumerate() {
            let db = &self.dbs[t.db];
            let Some(use_line) = db.use_line else {
                return Err(format!(
                    "database `{}` has tables but no USE statement in its section",
                    db.name
                ));
            };
            let r = root(&mut parent, i);
            let unit = groups.entry(r).or_insert_with(|| {
                order.push(r);
                Unit::default()
            });
            unit.spans.push(use_line);
            unit.spans.extend(t.spans.iter().copied());
            unit.tables.push(key(&db.name, &t.name));
        }
        let mut units: Vec<Unit> = order
            .into_iter()
            .filter_map(|r| groups.remove(&r))
            .collect();
        // Longest processing time first: the biggest units start first, the small ones fill in.
        units.sort_by_key(|u| std::cmp::Reverse(u.bytes()));
        self.plan.units = units;
        self.plan.filter = self.filter;
        Ok(self.plan)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A shortened `mariadb-dump --gtid --master-data --routines --events --triggers
    /// --databases a b` of 10.11: a foreign key from `a.c` to `a.p`, a trigger on `a.p`, a
    /// view per database, an event and a procedure, and the queue's database.
    const DUMP: &str = "\
/*M!999999\\- enable the sandbox mode */ 
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
CHANGE MASTER TO MASTER_USE_GTID=slave_pos;
-- CHANGE MASTER TO MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=2811;

--
-- Current Database: `a`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `a`;

USE `a`;

--
-- Table structure for table `c`
--

DROP TABLE IF EXISTS `c`;
CREATE TABLE `c` (
  `id` int(11) NOT NULL,
  CONSTRAINT `c_ibfk_1` FOREIGN KEY (`p`) REFERENCES `p` (`id`)
) ENGINE=InnoDB;

--
-- Dumping data for table `c`
--

INSERT INTO `c` VALUES (1,1);

--
-- Table structure for table `p`
--

CREATE TABLE `p` (`id` int(11) NOT NULL) ENGINE=InnoDB;
INSERT INTO `p` VALUES (1),(2);
DELIMITER ;;
/*!50003 CREATE*/ /*!50003 TRIGGER a.tr AFTER INSERT ON a.p FOR EACH ROW INSERT INTO b.m VALUES (NEW.id+100) 
*/;;
DELIMITER ;

--
-- Table structure for table `big`
--

CREATE TABLE `big` (`id` int(11) NOT NULL) ENGINE=InnoDB;
INSERT INTO `big` VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10),(11),(12),(13),(14),(15),(16);

--
-- Temporary table structure for view `v`
--

/*!50001 CREATE VIEW `v` AS SELECT
 NULL AS `id` */;

--
-- Dumping events for database 'a'
--
DELIMITER ;;
/*!50106 CREATE*/ /*!50106 EVENT `e` ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM b.m */ ;;
DELIMITER ;

--
-- Dumping routines for database 'a'
--
DELIMITER ;;
CREATE PROCEDURE `pr`()
SELECT 1
;;
DELIMITER ;

--
-- Current Database: `b`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `b`;

USE `b`;

--
-- Table structure for table `m`
--

CREATE TABLE `m` (`id` int(11) NOT NULL) ENGINE=MyISAM;
INSERT INTO `m` VALUES (5);

--
-- Current Database: `replication_manager_schema`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `replication_manager_schema`;

USE `replication_manager_schema`;

--
-- Table structure for table `jobs`
--

CREATE TABLE `jobs` (`id` int(11) NOT NULL) ENGINE=InnoDB;
INSERT INTO `jobs` VALUES (7);

--
-- Current Database: `a`
--

USE `a`;

--
-- Final view structure for view `v`
--

/*!50001 VIEW `v` AS select `p`.`id` AS `id` from (`p` join `c`) */;

-- The deferred gtid setting for slave corresponding to the master-data CHANGE-MASTER follows
SET GLOBAL gtid_slave_pos='0-1-13';
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

-- Dump completed on 2026-11-26  8:44:36
";

    /// A dump whose section ends inside a `DELIMITER ;;` block: not planned.
    const DELIMITED: &str = "-- Current Database: `a`\nUSE `a`;\n-- Table structure for table `t`\nDELIMITER ;;\nSELECT 1;;\n-- Table structure for table `u`\nSELECT 2;\n";

    fn plan(text: &str) -> Result<DumpPlan, String> {
        let mut b = PlanBuilder::default();
        for line in text.split_inclusive('\n') {
            b.line(line.as_bytes());
        }
        b.finish()
    }

    fn text(dump: &str, spans: &[Span]) -> String {
        spans
            .iter()
            .map(|s| &dump[s.start as usize..s.end as usize])
            .collect()
    }

    /// The dump's lines (1-based) that `spans` cover, checking each span's line numbers.
    fn lines_of(dump: &str, spans: &[Span]) -> Vec<u64> {
        let starts: Vec<usize> = std::iter::once(0)
            .chain(dump.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut out = Vec::new();
        for s in spans {
            assert_eq!(starts[s.first_line as usize - 1], s.start as usize, "{s:?}");
            assert_eq!(
                starts[(s.first_line + s.lines - 1) as usize],
                s.end as usize
            );
            out.extend(s.first_line..s.first_line + s.lines);
        }
        out
    }

    #[test]
    fn a_dump_splits_into_database_table_and_final_phases() {
        let p = plan(DUMP).unwrap();
        let header = text(DUMP, &p.session_header);
        assert!(header.starts_with("/*M!999999"), "{header}");
        assert!(header.contains("SET NAMES utf8mb4"));
        assert!(header.contains("FOREIGN_KEY_CHECKS=0"));
        assert!(!header.contains("CHANGE MASTER"), "{header}");

        let first = text(DUMP, &p.first);
        assert!(first.contains("CHANGE MASTER TO MASTER_USE_GTID"));
        assert!(first.contains("CREATE DATABASE /*!32312 IF NOT EXISTS*/ `a`"));
        assert!(first.contains("CREATE DATABASE /*!32312 IF NOT EXISTS*/ `b`"));
        assert!(!first.contains("CREATE TABLE"), "{first}");

        // Foreign keys keep `c` and `p` together; the biggest unit comes first.
        let tables: Vec<Vec<String>> = p.units.iter().map(|u| u.tables.clone()).collect();
        assert_eq!(
            tables,
            vec![
                vec!["a.c".to_string(), "a.p".to_string()],
                vec!["a.big".to_string()],
                vec!["b.m".to_string()]
            ]
        );
        assert!(p.units.windows(2).all(|w| w[0].bytes() >= w[1].bytes()));
        let cp = text(DUMP, &p.units[0].spans);
        assert!(cp.starts_with("USE `a`;\n"), "{cp}");
        assert_eq!(cp.matches("USE `a`;").count(), 2, "{cp}");
        assert!(cp.contains("TRIGGER a.tr"));
        assert!(
            cp.trim_end()
                .trim_end_matches('-')
                .trim_end()
                .ends_with("DELIMITER ;"),
            "{cp}"
        );
        assert!(text(DUMP, &p.units[2].spans).starts_with("USE `b`;\n"));

        let rest = text(DUMP, &p.rest);
        assert!(rest.starts_with("USE `a`;\n"), "{rest}");
        let order = [
            "CREATE VIEW `v` AS SELECT",
            "EVENT `e`",
            "PROCEDURE `pr`",
            "VIEW `v` AS select",
            "SET GLOBAL gtid_slave_pos='0-1-13'",
            "SET TIME_ZONE=@OLD_TIME_ZONE",
        ];
        let at: Vec<usize> = order.iter().map(|o| rest.find(o).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{rest}");

        // The queue filter applied to every part, and the position was read.
        let all = [first.clone(), rest.clone()]
            .into_iter()
            .chain(p.units.iter().map(|u| text(DUMP, &u.spans)))
            .collect::<String>();
        assert!(!all.contains("replication_manager_schema"), "{all}");
        assert!(!all.contains("`jobs`"));
        assert_eq!(p.filter.gtid.as_deref(), Some("0-1-13"));
        assert_eq!(p.filter.binlog_pos.as_deref(), Some("2811"));
        assert!(p.skipped_lines > 0);
    }

    #[test]
    fn every_kept_line_is_applied_exactly_once_but_use_lines_per_unit() {
        let p = plan(DUMP).unwrap();
        let mut covered = lines_of(DUMP, &p.first);
        covered.extend(lines_of(DUMP, &p.rest));
        for u in &p.units {
            covered.extend(lines_of(DUMP, &u.spans));
        }
        let dump_lines: Vec<&str> = DUMP.split_inclusive('\n').collect();
        let mut filter = DumpFilter::default();
        for (i, l) in dump_lines.iter().enumerate() {
            let n = covered.iter().filter(|&&c| c == i as u64 + 1).count();
            let kept = filter.keep(l.as_bytes());
            if !kept {
                assert_eq!(n, 0, "line {} {l:?}", i + 1);
            } else if l.starts_with("USE ") {
                assert!(n >= 1, "line {} {l:?}", i + 1);
            } else {
                assert_eq!(n, 1, "line {} {l:?}", i + 1);
            }
        }
        let mut filter = DumpFilter::default();
        let kept: u64 = dump_lines
            .iter()
            .filter(|l| filter.keep(l.as_bytes()))
            .map(|l| l.len() as u64)
            .sum();
        assert_eq!(p.kept_bytes, kept);
    }

    /// The plan of `dump` fed in chunks of `size` bytes.
    fn plan_fed(dump: &[u8], size: usize) -> Result<DumpPlan, String> {
        let mut b = PlanBuilder::default();
        for chunk in dump.chunks(size) {
            b.feed(chunk);
        }
        b.finish()
    }

    #[test]
    fn chunks_of_any_size_give_the_plan_of_the_lines() {
        let by_line = plan(DUMP).unwrap();
        for size in (1..=64).chain([DUMP.len()]) {
            assert_eq!(
                plan_fed(DUMP.as_bytes(), size),
                Ok(by_line.clone()),
                "{size}"
            );
        }
        // The same for a dump that is refused: the same reason, the same line number.
        for size in 1..=8 {
            assert_eq!(
                plan_fed(DELIMITED.as_bytes(), size),
                plan(DELIMITED),
                "{size}"
            );
        }
    }

    #[test]
    fn long_lines_fed_in_pieces_give_the_plan_of_the_lines() {
        // Lines about MARKER_MAX long, in a table section and in the queue's (skipped)
        // section: a `REFERENCES` that counts at MARKER_MAX bytes and not one byte beyond, a
        // 100 KiB INSERT and a 100 KiB row, the dump ending in a long line without newline.
        let pad = |text: &str, len: usize| format!("{text}{}\n", " ".repeat(len - text.len() - 1));
        let dump = [
            "-- Current Database: `a`\nUSE `a`;\n-- Table structure for table `c`\n".to_string(),
            pad(
                "  CONSTRAINT `f` FOREIGN KEY (`x`) REFERENCES `p` (`id`)",
                MARKER_MAX,
            ),
            "-- Table structure for table `d`\n".to_string(),
            pad(
                "  CONSTRAINT `f` FOREIGN KEY (`x`) REFERENCES `q` (`id`)",
                MARKER_MAX + 1,
            ),
            format!(
                "INSERT INTO `d` VALUES {};\n",
                "(1,'-- Current Database: `b`'),".repeat(3500)
            ),
            "-- Table structure for table `p`\nCREATE TABLE `p` (`id` int);\n".to_string(),
            "-- Table structure for table `q`\nCREATE TABLE `q` (`id` int);\n".to_string(),
            format!("({});\n", "2,".repeat(50_000)),
            "-- Current Database: `replication_manager_schema`\n".to_string(),
            "USE `replication_manager_schema`;\n".to_string(),
            pad("INSERT INTO `jobs` VALUES (1);", MARKER_MAX + 1),
            format!("({});\n", "3,".repeat(50_000)),
            "-- Current Database: `b`\nUSE `b`;\n-- Table structure for table `t`\n".to_string(),
            format!("INSERT INTO `t` VALUES {};", "(4),".repeat(30_000)),
        ]
        .concat();
        let by_line = plan(&dump).unwrap();
        let tables: Vec<Vec<String>> = by_line.units.iter().map(|u| u.tables.clone()).collect();
        assert!(
            tables.contains(&vec!["a.c".to_string(), "a.p".to_string()]),
            "{tables:?}"
        );
        assert!(tables.contains(&vec!["a.q".to_string()]), "{tables:?}");
        assert_eq!(by_line.skipped_lines, 4);
        let last = by_line
            .units
            .iter()
            .flat_map(|u| &u.spans)
            .map(|s| s.end)
            .max();
        assert_eq!(last, Some(dump.len() as u64));
        for size in [
            1,
            2,
            3,
            7,
            100,
            MARKER_MAX,
            HEAD,
            HEAD + 1,
            65_536,
            dump.len(),
        ] {
            assert_eq!(
                plan_fed(dump.as_bytes(), size),
                Ok(by_line.clone()),
                "{size}"
            );
        }
    }

    #[test]
    fn a_last_line_without_newline_is_planned() {
        let dump = DUMP.trim_end_matches('\n');
        let by_line = plan(dump).unwrap();
        assert!(text(dump, &by_line.rest).ends_with("-- Dump completed on 2026-11-26  8:44:36"));
        let lines = dump.split_inclusive('\n').count() as u64;
        let last = by_line.rest.last().unwrap();
        assert_eq!(last.first_line + last.lines - 1, lines);
        for size in [1, 5, 64, dump.len()] {
            assert_eq!(
                plan_fed(dump.as_bytes(), size),
                Ok(by_line.clone()),
                "{size}"
            );
        }
    }

    #[test]
    fn system_schemas_stay_in_the_first_phase() {
        let dump = "\
/*!40101 SET NAMES utf8mb4 */;
-- Current Database: `mysql`
/*!50106 SET @save_log_output=@@LOG_OUTPUT*/;
USE `mysql`;
-- Table structure for table `general_log`
CREATE TABLE IF NOT EXISTS `general_log` (`a` int);
-- Table structure for table `slow_log`
CREATE TABLE IF NOT EXISTS `slow_log` (`a` int);
/*!50106 SET GLOBAL LOG_OUTPUT=@save_log_output*/;
-- Table structure for table `db`
INSERT INTO `db` VALUES (1);
-- Dumping routines for database 'mysql'
CREATE PROCEDURE `x`() SELECT 1;
-- Current Database: `app`
USE `app`;
-- Table structure for table `t1`
INSERT INTO `t1` VALUES (1);
-- Table structure for table `t2`
INSERT INTO `t2` VALUES (1);
-- Current Database: `mysql`
USE `mysql`;
-- Final view structure for view `user`
/*!50001 VIEW `user` AS select 1 */;
";
        let p = plan(dump).unwrap();
        let first = text(dump, &p.first);
        assert!(first.contains("@save_log_output=@@LOG_OUTPUT"));
        assert!(first.contains("LOG_OUTPUT=@save_log_output"));
        assert!(first.contains("PROCEDURE `x`"));
        assert_eq!(p.units.len(), 2);
        assert!(p.units.iter().all(|u| u.tables[0].starts_with("app.")));
        let rest = text(dump, &p.rest);
        assert!(rest.contains("USE `mysql`;\n-- Final view"), "{rest}");
        assert!(
            rest.ends_with("/*!50001 VIEW `user` AS select 1 */;\n"),
            "{rest}"
        );
    }

    #[test]
    fn dumps_without_sections_are_not_planned() {
        // --compact: no comments at all.
        let compact = "/*!40101 SET NAMES utf8mb4 */;\nCREATE TABLE `t` (`a` int);\nINSERT INTO `t` VALUES (1);\n";
        assert!(plan(compact).unwrap_err().contains("Current Database"));
        // One database without --databases: tables but no database marker.
        let single = "-- Table structure for table `t`\nCREATE TABLE `t` (`a` int);\n";
        assert!(plan(single).unwrap_err().contains("before any"));
        // A section ending inside a DELIMITER ;; block.
        assert!(plan(DELIMITED).unwrap_err().contains("DELIMITER ;;"));
        // Tables of a database whose section has no USE.
        let nouse = "-- Current Database: `a`\n-- Table structure for table `t`\nSELECT 1;\n";
        assert!(plan(nouse).unwrap_err().contains("no USE"));
    }

    #[test]
    fn foreign_keys_across_databases_group_tables() {
        assert_eq!(
            references_in(
                "CONSTRAINT `f` FOREIGN KEY (`x`) REFERENCES `other`.`p` (`id`),",
                "a"
            ),
            vec![("other".to_string(), "p".to_string())]
        );
        assert_eq!(
            references_in(
                "FOREIGN KEY (`x`) REFERENCES `p` (`id`) ON DELETE CASCADE",
                "a"
            ),
            vec![("a".to_string(), "p".to_string())]
        );
        let dump = "\
-- Current Database: `a`
USE `a`;
-- Table structure for table `c`
CREATE TABLE `c` (`x` int, CONSTRAINT `f` FOREIGN KEY (`x`) REFERENCES `b`.`p` (`id`));
-- Table structure for table `lone`
CREATE TABLE `lone` (`x` int);
-- Current Database: `b`
USE `b`;
-- Table structure for table `p`
CREATE TABLE `p` (`id` int);
";
        let p = plan(dump).unwrap();
        let mut tables: Vec<Vec<String>> = p.units.iter().map(|u| u.tables.clone()).collect();
        tables.sort();
        assert_eq!(
            tables,
            vec![
                vec!["a.c".to_string(), "b.p".to_string()],
                vec!["a.lone".to_string()]
            ]
        );
        let cp = p.units.iter().find(|u| u.tables.len() == 2).unwrap();
        let t = text(dump, &cp.spans);
        let (a, b) = (t.find("USE `a`;").unwrap(), t.find("USE `b`;").unwrap());
        assert!(a == 0 && a < t.find("CREATE TABLE `c`").unwrap(), "{t}");
        assert!(b > t.find("CREATE TABLE `c`").unwrap(), "{t}");
        assert!(b < t.find("CREATE TABLE `p`").unwrap(), "{t}");
    }

    /// The heap the current thread holds: a global allocator that counts, per thread, what
    /// is allocated and freed, and the peak since [`heap::peak_of`] started.
    pub(crate) mod heap {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        thread_local! {
            static NOW: Cell<isize> = const { Cell::new(0) };
            static PEAK: Cell<isize> = const { Cell::new(0) };
        }

        fn add(delta: isize) {
            // `try_with`: nothing to count while the thread's locals are torn down.
            let _ = NOW.try_with(|now| {
                let v = now.get() + delta;
                now.set(v);
                let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
            });
        }

        /// Counts every allocation of this test binary, on the thread that makes it.
        pub struct Counting;

        // SAFETY: every call is forwarded to the system allocator unchanged.
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                let p = unsafe { System.alloc(layout) };
                if !p.is_null() {
                    add(layout.size() as isize);
                }
                p
            }
            unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
                let p = unsafe { System.alloc_zeroed(layout) };
                if !p.is_null() {
                    add(layout.size() as isize);
                }
                p
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                unsafe { System.dealloc(ptr, layout) };
                add(-(layout.size() as isize));
            }
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
                let p = unsafe { System.realloc(ptr, layout, new) };
                if !p.is_null() {
                    // Old and new block both exist while the data moves: count the peak so.
                    add(new as isize);
                    add(-(layout.size() as isize));
                }
                p
            }
        }

        /// What `f` returns, and the most heap the thread held above its start while it ran.
        pub fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
            let base = NOW.with(Cell::get);
            PEAK.with(|p| p.set(base));
            let r = f();
            let peak = PEAK.with(Cell::get) - base;
            (r, peak.max(0) as usize)
        }
    }

    #[global_allocator]
    static COUNTING: heap::Counting = heap::Counting;

    /// The plan of the gzip'd dump `gz`, decompressed and fed in 1 MiB pieces as the receive
    /// does, and the heap peak of it all.
    fn plan_of_gzip(gz: &[u8]) -> (Result<DumpPlan, String>, usize) {
        use std::io::Read;
        heap::peak_of(|| {
            let mut d = flate2::read::MultiGzDecoder::new(gz);
            let mut buf = vec![0u8; 1 << 20];
            let mut b = PlanBuilder::default();
            loop {
                let n = d.read(&mut buf).expect("a valid gzip file");
                if n == 0 {
                    break;
                }
                b.feed(&buf[..n]);
            }
            b.finish()
        })
    }

    /// A file of `tests/bad-inputs/gzip/`.
    fn bad_input(name: &str) -> Vec<u8> {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../tests/bad-inputs/gzip/"
        );
        std::fs::read(format!("{dir}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The bound the builder's heap stays under: the budget, the growth of the vectors that
    /// hold it (up to twice their length, three times while one moves) and the grouping of
    /// `finish`.
    const HEAP_BOUND: usize = 4 * PLAN_BUDGET;

    #[test]
    fn crafted_dumps_are_planned_in_bounded_memory() {
        // 48 MiB of header comment lines (a span each), 64 MiB of table markers (a section
        // each): 512 MiB and 1.2 GiB of heap before the budget.
        for (name, says) in [
            ("plan_mem_header_lines.sql.gz", "more than 32 MiB of memory"),
            ("plan_mem_sections.sql.gz", "more than 32 MiB of memory"),
        ] {
            let (plan, peak) = plan_of_gzip(&bad_input(name));
            let why = plan.unwrap_err();
            assert!(why.contains(says), "{name}: {why}");
            assert!(peak < HEAP_BOUND, "{name}: {peak} bytes of heap");
        }
    }

    #[test]
    fn a_dump_of_many_tables_is_planned_within_the_bound() {
        // 50 000 tables in 50 databases, each table a section with its data and a foreign
        // key: planned, in less heap than the bound.
        let mut dump = String::from("/*!40101 SET NAMES utf8mb4 */;\n");
        for d in 0..50 {
            dump.push_str(&format!("-- Current Database: `d{d}`\nUSE `d{d}`;\n"));
            for t in 0..1000 {
                dump.push_str(&format!(
                    "-- Table structure for table `t{t}`\nCREATE TABLE `t{t}` (`id` int,\n  CONSTRAINT `f` FOREIGN KEY (`id`) REFERENCES `t{}` (`id`)\n);\n-- Dumping data for table `t{t}`\nINSERT INTO `t{t}` VALUES (1);\n",
                    t / 2
                ));
            }
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, dump.as_bytes()).unwrap();
        let (plan, peak) = plan_of_gzip(&gz.finish().unwrap());
        let plan = plan.unwrap();
        assert_eq!(
            plan.units.iter().map(|u| u.tables.len()).sum::<usize>(),
            50_000
        );
        assert!(peak < HEAP_BOUND, "{peak} bytes of heap");
    }
}
