//! The split of a logical dump into what is built aside and what is created after the
//! switch, while it is received.
//!
//! A crash-safe logical restore never writes into a live database before the switch: the
//! dump's base tables and sequences are built in shadow databases, swapped in by one
//! `RENAME TABLE`, and only then are views, triggers, routines and events created (under
//! the live names, from the backup's definitions). [`Splitter`] reads the decompressed dump
//! line by line, as it streams by, and writes:
//!
//! * **`build.sql`**: the header's session settings, each user database's marker and `USE`
//!   and its table and sequence sections up to their triggers, with every database name
//!   rewritten to its shadow name (the `k`-th database of the dump gets `shadow(k)`); its
//!   `DROP`/`CREATE DATABASE` are left out, the restore creates the shadow (and old, and
//!   missing live) databases before the build with the options of the dump's
//!   `CREATE DATABASE` ([`Split::creates`]); `REFERENCES `db`.`t`` of a
//!   `CREATE TABLE` included. `LOCK TABLES`, `INSERT` and `SETVAL` are unqualified in
//!   `mariadb-dump` output, so they follow the `USE`. The plan of a parallel apply is built
//!   from exactly these bytes, so its spans index `build.sql`.
//! * **`objects.sql`**, replayed in one session after the switch: the header's session
//!   settings; then the sections of the system schemas (`mysql`) as the dump has them (the
//!   users and grants exist before the objects naming them as definers, and the dump's
//!   `mysql.proc`/`mysql.event` rows are overwritten by the objects' own statements, not the
//!   other way round); then the views (placeholders and final structures), triggers,
//!   routines and events, each run preceded by `USE `live``, with a `DROP TRIGGER IF EXISTS`
//!   before each `CREATE TRIGGER` (the dump drops the other objects itself), so that a
//!   replay after a crash in the middle of it succeeds; and last the position the dump sets
//!   (`CHANGE MASTER TO` of the header, `SET GLOBAL gtid_slave_pos`) and its trailer. One
//!   file, because the recovery of a run killed after the switch replays exactly what the
//!   run would have, in one go ([`crate::journal`]); the position comes last so that a
//!   replay that failed leaves no position set for a node whose objects are missing.
//!
//! The job queue's database stays out of both ([`DumpFilter`], as in the plain replay),
//! and the position the dump sets is picked up on the way.
//!
//! A reference to a database whose section comes later in the dump (`mariadb-dump
//! --all-databases` writes `a-b` before `a_b`) cannot be rewritten when it streams by: its
//! shadow name is not known yet. It is written as the live name padded with spaces to the
//! width of any shadow name (`` `a_b`      .`t` ``, which SQL reads as `a_b`.`t`) and patched
//! in place once the dump is read ([`Split::patches`]), so no byte of `build.sql` moves.
//!
//! What cannot be recognised (no `-- Current Database:` marker: `--compact`,
//! `--skip-comments` or a dump of one database without `--databases`; a table before its
//! database's `USE`; a section ending inside a `DELIMITER` block; a database statement
//! naming another database) is refused: applied the old way, it would write into live
//! databases before the switch.

use std::collections::HashMap;
use std::io::{self, Write};

use dbjobs_kit::position::BinlogPosition;
use dbjobs_kit::sql::{is_system_schema, quote_ident};

use super::filter::newline;
use super::filter::{DumpFilter, LineMap, MARKER_MAX, QUEUE_SCHEMA};
use super::plan::{DumpPlan, PlanBuilder};

/// The name of the part built aside, in the staging directory.
pub const BUILD_FILE: &str = "build.sql";
/// The name of the part replayed after the switch, in the staging directory.
pub const OBJECTS_FILE: &str = "objects.sql";
/// Where the objects are collected while the dump streams by, before they are appended to
/// [`OBJECTS_FILE`] behind the system schemas.
pub const OBJECTS_PART_FILE: &str = "objects.part";

/// The most bytes of a line that is not data held in memory: more than any `CREATE TABLE`
/// line can be (a `REFERENCES` in it must be read to be rewritten). Longer lines stream on.
const LINE_MAX: usize = 1 << 20;
/// The most bytes a split may record (database names, their `CREATE DATABASE`, forward
/// references, the line map of `build.sql`), counted as it records them: far more than a
/// real dump needs (about 100 bytes per database), so that a crafted one (millions of
/// database markers) is refused in bounded memory rather than split.
pub const SPLIT_BUDGET: usize = 32 << 20;
/// The most bytes the position statements and the trailer may take (a few hundred in a
/// real dump): more is not a dump this module recognises.
const TAIL_MAX: usize = 1 << 20;

/// The section of the dump a line is in, which decides where it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    /// Before the first `-- Current Database:` marker.
    Header,
    /// The first section of user database `i` (its database statements).
    Database(usize),
    /// A table or sequence section of user database `db`; `triggers` once its trigger part
    /// (`/*!50003` session settings, `DELIMITER`, `CREATE TRIGGER`) began.
    Table { db: usize, triggers: bool },
    /// Views, routines, events of user database `i`, and its later sections.
    Objects(usize),
    /// Any section of a system schema.
    System,
    /// The job queue's section (the filter drops its lines).
    Queue,
    /// The position and the trailer at the end of the dump.
    Tail,
}

/// Where a line goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dest {
    /// `build.sql` (and the plan).
    Build,
    /// The header's settings: both files.
    Both,
    /// The objects of user database `i`.
    Objects(usize),
    /// `objects.sql` directly (system schemas).
    System,
    /// The position statements of the header.
    Position,
    /// The trailer.
    Tail,
    /// Nowhere (the job queue).
    Drop,
}

/// The three files a [`Splitter`] writes.
pub struct Outputs<B, O, P> {
    /// `build.sql`.
    pub build: B,
    /// `objects.sql`: the header and the system schemas as they stream by.
    pub objects: O,
    /// The objects of the user databases, appended to `objects.sql` at the end.
    pub part: P,
}

/// A bytes-for-bytes change of `build.sql` once the whole dump is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    /// Offset in `build.sql`.
    pub offset: u64,
    /// The bytes to write there (as long as what they replace).
    pub bytes: Vec<u8>,
}

/// What a [`Splitter`] found, once the dump is read.
pub struct Split<B, O, P> {
    /// The files, flushed.
    pub outputs: Outputs<B, O, P>,
    /// The live names of the user databases, in dump order: the `k`-th is built as
    /// `shadow(k)`.
    pub databases: Vec<String>,
    /// The dump's `CREATE DATABASE` statement of each user database (live name,
    /// statement): the options the shadow, old and missing live databases are created with.
    pub creates: Vec<(String, String)>,
    /// The forward references to patch into `build.sql`.
    pub patches: Vec<Patch>,
    /// What goes at the end of `objects.sql`, after the part: the position statements and
    /// the dump's trailer.
    pub tail: Vec<u8>,
    /// The plan of a parallel apply of `build.sql`, when one was asked for.
    pub plan: Option<Result<DumpPlan, String>>,
    /// The position the dump sets, if any.
    pub position: Option<BinlogPosition>,
    /// Lines the filter dropped (the job queue's).
    pub skipped_lines: u64,
    /// Bytes written to `build.sql`.
    pub build_bytes: u64,
    /// The dump's line of each line of `build.sql`, to report an error by the dump's line.
    pub build_lines: LineMap,
}

/// Splits a dump fed in chunks of any size (it is a [`Write`]) into `build.sql` and
/// `objects.sql` (see the module documentation).
pub struct Splitter<B: Write, O: Write, P: Write> {
    out: Outputs<B, O, P>,
    shadow: Box<dyn Fn(usize) -> String + Send>,
    /// The longest quoted shadow name there can be: the width of a forward reference.
    shadow_width: usize,
    filter: DumpFilter,
    plan: Option<PlanBuilder>,
    section: Section,
    dbs: Vec<String>,
    index: HashMap<String, usize>,
    creates: Vec<(String, String)>,
    /// The user database of the last `USE` written to `build.sql`.
    build_db: Option<usize>,
    /// The user database of the last `USE` written to the part.
    objects_db: Option<usize>,
    delimiter: String,
    /// Inside a `CREATE TABLE` statement of a table section.
    in_create: bool,
    /// Whether a `-- Current Database:` marker was seen.
    databases_seen: bool,
    build_at: u64,
    build_line: u64,
    /// Whether the last bytes written to `build.sql` ended in the middle of a line.
    build_open: bool,
    build_lines: LineMap,
    dump_line: u64,
    /// `(offset in build.sql, live name, width)` of each forward reference.
    forward: Vec<(u64, String, usize)>,
    position_lines: Vec<u8>,
    tail: Vec<u8>,
    skipped_lines: u64,
    /// Bytes recorded so far, against [`SPLIT_BUDGET`].
    recorded: usize,
    /// The dump line of the last line of `build.sql`.
    last_build_dump_line: u64,
    refused: Option<String>,
    /// The line being gathered, until it ends or turns out too long to hold.
    line: Vec<u8>,
    /// Where the rest of a too long line goes.
    streaming: Option<Dest>,
    /// The last byte other than white space of the line streaming on.
    streamed_last: u8,
}

impl<B: Write, O: Write, P: Write> Splitter<B, O, P> {
    /// A splitter writing into `out`; `shadow(k)` is the shadow name of the dump's `k`-th
    /// user database; with `with_plan`, the plan of a parallel apply of `build.sql` is built.
    pub fn new(
        out: Outputs<B, O, P>,
        shadow: impl Fn(usize) -> String + Send + 'static,
        with_plan: bool,
    ) -> Self {
        let shadow_width = quote_ident(&shadow(usize::MAX)).len();
        Splitter {
            out,
            shadow: Box::new(shadow),
            shadow_width,
            filter: DumpFilter::default(),
            plan: with_plan.then(PlanBuilder::default),
            section: Section::Header,
            dbs: Vec::new(),
            index: HashMap::new(),
            creates: Vec::new(),
            build_db: None,
            objects_db: None,
            delimiter: ";".into(),
            in_create: false,
            databases_seen: false,
            build_at: 0,
            build_line: 0,
            build_open: false,
            build_lines: LineMap::default(),
            dump_line: 0,
            forward: Vec::new(),
            position_lines: Vec::new(),
            tail: Vec::new(),
            skipped_lines: 0,
            recorded: 0,
            last_build_dump_line: 0,
            refused: None,
            line: Vec::new(),
            streaming: None,
            streamed_last: b' ',
        }
    }

    /// The dump is not one this module can split, for `why` (the first reason is kept).
    fn refuse(&mut self, why: String) {
        self.refused.get_or_insert(why);
    }

    /// Count `bytes` more recorded; past [`SPLIT_BUDGET`], the dump is refused.
    fn record(&mut self, bytes: usize) {
        self.recorded += bytes;
        if self.recorded > SPLIT_BUDGET {
            self.refuse(format!(
                "splitting it would take more than {} MiB of memory ({} databases by line {})",
                SPLIT_BUDGET >> 20,
                self.dbs.len(),
                self.dump_line
            ));
        }
    }

    /// Take the next piece of a line (`ends`: with its newline).
    fn take(&mut self, piece: &[u8], ends: bool) -> io::Result<()> {
        if self.refused.is_some() {
            return Ok(()); // nothing of a refused dump is written
        }
        if let Some(dest) = self.streaming {
            self.emit(dest, piece)?;
            if let Some(&b) = piece.trim_ascii_end().last() {
                self.streamed_last = b;
            }
            if ends {
                self.streaming = None;
                if self.streamed_last == b';' {
                    self.in_create = false; // a long last line of a CREATE TABLE
                }
            }
            return Ok(());
        }
        if ends && self.line.is_empty() {
            return self.whole(piece); // the common case: no copy
        }
        self.line.extend_from_slice(piece);
        if ends {
            let line = std::mem::take(&mut self.line);
            let r = self.whole(&line);
            self.line = line;
            self.line.clear();
            return r;
        }
        let data = matches!(self.line.first(), Some(b'(' | b'I'));
        let limit = if data { MARKER_MAX } else { LINE_MAX };
        if self.line.len() > limit {
            let head = std::mem::take(&mut self.line);
            self.streamed_last = head.trim_ascii_end().last().copied().unwrap_or(b' ');
            let r = self.start_long(&head);
            self.line = head; // its buffer, for the next line
            self.line.clear();
            r?;
        }
        Ok(())
    }

    /// The start of a line too long to hold: judged on its head, it streams to where its
    /// section sends data.
    fn start_long(&mut self, head: &[u8]) -> io::Result<()> {
        self.dump_line += 1;
        if self.in_create && !matches!(head.first(), Some(b'(' | b'I')) {
            self.refuse(format!(
                "line {} of a CREATE TABLE is longer than {} MiB",
                self.dump_line,
                LINE_MAX >> 20
            ));
            return Ok(());
        }
        let dest = if self.filter.keep_head(head, head.len() as u64) {
            self.data_dest()
        } else {
            self.skipped_lines += 1;
            Dest::Drop
        };
        self.streaming = Some(dest);
        self.emit(dest, head)
    }

    /// Where the current section sends a line whose text is not looked at.
    fn data_dest(&self) -> Dest {
        match self.section {
            Section::Header => Dest::Both,
            Section::Database(_)
            | Section::Table {
                triggers: false, ..
            } => Dest::Build,
            Section::Table { db, triggers: true } | Section::Objects(db) => Dest::Objects(db),
            Section::System => Dest::System,
            Section::Queue => Dest::Drop,
            Section::Tail => Dest::Tail,
        }
    }

    /// A whole line (with its newline, unless it is the dump's last). Markers are short
    /// lines that are not data; the rest of a line's handling looks at its first
    /// `MARKER_MAX` bytes, and at all of it to rewrite a `CREATE TABLE` line.
    fn whole(&mut self, line: &[u8]) -> io::Result<()> {
        self.dump_line += 1;
        // Rows and INSERTs are never markers: their text is not looked at.
        let data = matches!(line.first(), Some(b'(' | b'I'));
        let text = (!data).then(|| head_text(line));
        if let Some(t) = text.as_deref().filter(|_| line.len() <= MARKER_MAX) {
            self.section_change(t);
        }
        if self.refused.is_some() {
            return Ok(());
        }
        if !self.filter.keep(line) {
            self.skipped_lines += 1;
            return Ok(());
        }
        if data && !self.in_create {
            return self.emit(self.data_dest(), line);
        }
        let text = text.unwrap_or_else(|| head_text(line));
        self.route(line, &text)
    }

    /// Follow the dump's markers from section to section.
    fn section_change(&mut self, t: &str) {
        if let Some(d) = t.strip_prefix("DELIMITER ") {
            self.delimiter = d.trim().to_string();
            if let Section::Table {
                db,
                triggers: false,
            } = self.section
            {
                self.section = Section::Table { db, triggers: true };
            }
            return;
        }
        if t.starts_with("SET GLOBAL gtid_slave_pos")
            || t.starts_with("/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE")
        {
            self.section = Section::Tail;
            return;
        }
        if let Section::Table {
            db,
            triggers: false,
        } = self.section
        {
            if t.starts_with("/*!50003 ") {
                self.section = Section::Table { db, triggers: true };
            }
        }
        if !t.starts_with("-- ") {
            return;
        }
        let ends_section = [
            "-- Current Database: ",
            "-- Table structure for table ",
            "-- Sequence structure for ",
            "-- Temporary table structure for view ",
            "-- Temporary view structure for view ",
            "-- Final view structure for view ",
            "-- Dumping routines for database ",
            "-- Dumping events for database ",
            "-- The deferred gtid setting",
            "-- Dump completed",
        ];
        let continues_table = t.starts_with("-- Dumping data for table ")
            && matches!(
                self.section,
                Section::Table {
                    triggers: false,
                    ..
                }
            );
        let marker = ends_section.iter().any(|m| t.starts_with(m))
            || (t.starts_with("-- Dumping data for table ") && !continues_table);
        if !marker {
            return;
        }
        if self.delimiter != ";" {
            self.refuse(format!(
                "a section ends at line {} with DELIMITER {} in force",
                self.dump_line, self.delimiter
            ));
            return;
        }
        self.in_create = false;
        self.marker(t);
    }

    /// A marker that starts a section.
    fn marker(&mut self, t: &str) {
        if let Some(rest) = t.strip_prefix("-- Current Database: ") {
            return self.database(&marker_name(rest));
        }
        let tail =
            t.starts_with("-- The deferred gtid setting") || t.starts_with("-- Dump completed");
        if tail {
            self.section = Section::Tail;
            return;
        }
        let db = match self.section {
            Section::Database(i) | Section::Table { db: i, .. } | Section::Objects(i) => Some(i),
            Section::System | Section::Queue | Section::Tail => return,
            Section::Header => None,
        };
        let table = t.starts_with("-- Table structure for table ")
            || t.starts_with("-- Sequence structure for ")
            || t.starts_with("-- Dumping data for table ");
        match (db, table) {
            (None, _) => self.refuse(format!(
                "line {} ({t}) comes before any `-- Current Database:` marker (a dump made without --databases or --all-databases)",
                self.dump_line
            )),
            (Some(i), true) if self.build_db != Some(i) => self.refuse(format!(
                "the table section at line {} ({t}) does not follow a USE of its database `{}`",
                self.dump_line, self.dbs[i]
            )),
            (Some(i), true) => {
                self.section = Section::Table {
                    db: i,
                    triggers: false,
                }
            }
            (Some(i), false) => self.section = Section::Objects(i),
        }
    }

    /// A `-- Current Database:` marker of `name`.
    fn database(&mut self, name: &str) {
        if self.section == Section::Tail {
            self.refuse(format!(
                "a database section (`{name}`) follows the dump's trailer at line {}",
                self.dump_line
            ));
            return;
        }
        self.databases_seen = true;
        self.section = if name.eq_ignore_ascii_case(QUEUE_SCHEMA) {
            Section::Queue
        } else if is_system_schema(name) {
            Section::System
        } else if let Some(&i) = self.index.get(name) {
            Section::Objects(i)
        } else {
            let i = self.dbs.len();
            self.record(2 * name.len() + 96);
            self.dbs.push(name.to_string());
            self.index.insert(name.to_string(), i);
            Section::Database(i)
        };
    }

    /// Write a short line, kept by the filter, where its section sends it, rewritten.
    fn route(&mut self, line: &[u8], t: &str) -> io::Result<()> {
        match self.section {
            Section::Header => {
                let position = t.to_ascii_uppercase().starts_with("CHANGE MASTER")
                    || t.to_ascii_uppercase().contains("GTID_PURGED");
                self.emit(if position { Dest::Position } else { Dest::Both }, line)
            }
            Section::Database(i) => self.database_line(i, line, t),
            Section::Table {
                triggers: false, ..
            } => {
                if t.starts_with("CREATE TABLE") {
                    self.in_create = true;
                } else if t.starts_with("INSERT") {
                    self.in_create = false; // data: never rewritten
                }
                if !self.in_create {
                    return self.emit(Dest::Build, line);
                }
                if line.trim_ascii_end().ends_with(b";") {
                    self.in_create = false;
                }
                let rewritten = self.references(line);
                self.emit(Dest::Build, &rewritten)
            }
            Section::Table { db, triggers: true } => {
                if let Some(name) = trigger_name(t) {
                    let drop = format!(
                        "/*!50032 DROP TRIGGER IF EXISTS {name} */{}\n",
                        self.delimiter
                    );
                    self.emit(Dest::Objects(db), drop.as_bytes())?;
                }
                self.emit(Dest::Objects(db), line)
            }
            _ => self.emit(self.data_dest(), line),
        }
    }

    /// A line of the first section of user database `i`: its name in the marker and the
    /// database statements becomes the shadow name.
    fn database_line(&mut self, i: usize, line: &[u8], t: &str) -> io::Result<()> {
        let upper = t.to_ascii_uppercase();
        let names_db = t.starts_with("-- Current Database: ")
            || upper.starts_with("/*!40000 DROP DATABASE")
            || upper.starts_with("DROP DATABASE")
            || upper.starts_with("CREATE DATABASE")
            || upper.starts_with("USE ");
        if !names_db {
            return self.emit(Dest::Build, line);
        }
        let live = quote_ident(&self.dbs[i]);
        let shadow = quote_ident(&(self.shadow)(i));
        let Some(at) = memchr::memmem::find(line, live.as_bytes()) else {
            self.refuse(format!(
                "line {} ({t}) in the section of database `{}` names another database",
                self.dump_line, self.dbs[i]
            ));
            return Ok(());
        };
        let mut out = Vec::with_capacity(line.len() + shadow.len());
        out.extend_from_slice(&line[..at]);
        out.extend_from_slice(shadow.as_bytes());
        out.extend_from_slice(&line[at + live.len()..]);
        if upper.starts_with("USE ") {
            self.build_db = Some(i);
        }
        if upper.starts_with("CREATE DATABASE") {
            let statement = t.trim_end_matches(';').trim_end().to_string();
            self.record(statement.len() + 48);
            self.creates.push((self.dbs[i].clone(), statement));
        }
        if upper.contains("DROP DATABASE") || upper.starts_with("CREATE DATABASE") {
            // The shadow is created before the build, with these options: dropping it here
            // or creating it again (a CREATE without IF NOT EXISTS) would undo or fail that.
            return Ok(());
        }
        self.emit(Dest::Build, &out)
    }

    /// `line` of a `CREATE TABLE` with the database of each `REFERENCES `db`.`t`` rewritten
    /// to its shadow name, or padded to be patched (a database whose section comes later).
    fn references(&mut self, line: &[u8]) -> Vec<u8> {
        const KEY: &[u8] = b"REFERENCES `";
        let mut out = Vec::with_capacity(line.len());
        let mut rest = line;
        while let Some(p) = memchr::memmem::find(rest, KEY) {
            let start = p + KEY.len() - 1; // the backquote
            out.extend_from_slice(&rest[..start]);
            rest = &rest[start..];
            let Some((quoted, name)) = backquoted(rest) else {
                break;
            };
            let qualifier = rest.get(quoted) == Some(&b'.');
            if !qualifier || is_system_schema(&name) {
                out.extend_from_slice(&rest[..quoted]);
            } else if let Some(&k) = self.index.get(&name) {
                out.extend_from_slice(quote_ident(&(self.shadow)(k)).as_bytes());
            } else {
                let width = quoted.max(self.shadow_width);
                self.record(name.len() + 48);
                self.forward
                    .push((self.build_at + out.len() as u64, name, width));
                out.extend_from_slice(&rest[..quoted]);
                out.resize(out.len() + width - quoted, b' ');
            }
            rest = &rest[quoted..];
        }
        out.extend_from_slice(rest);
        out
    }

    /// Write `bytes` to `dest`.
    fn emit(&mut self, dest: Dest, bytes: &[u8]) -> io::Result<()> {
        match dest {
            Dest::Build => self.build(bytes),
            Dest::Both => {
                self.build(bytes)?;
                self.out.objects.write_all(bytes)
            }
            Dest::Objects(i) => {
                if self.objects_db != Some(i) {
                    let use_line = format!("USE {};\n", quote_ident(&self.dbs[i]));
                    self.out.part.write_all(use_line.as_bytes())?;
                    self.objects_db = Some(i);
                }
                self.out.part.write_all(bytes)
            }
            Dest::System => self.out.objects.write_all(bytes),
            Dest::Position => {
                bounded_push(&mut self.position_lines, bytes, &mut self.refused);
                Ok(())
            }
            Dest::Tail => {
                bounded_push(&mut self.tail, bytes, &mut self.refused);
                Ok(())
            }
            Dest::Drop => Ok(()),
        }
    }

    /// Write `bytes` to `build.sql` and the plan, noting its lines' dump lines.
    fn build(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.build.write_all(bytes)?;
        if let Some(p) = self.plan.as_mut() {
            p.feed(bytes);
        }
        if !self.build_open {
            self.build_line += 1;
            if self.dump_line != self.last_build_dump_line + 1 {
                self.record(16); // a new run in the line map
            }
            self.last_build_dump_line = self.dump_line;
            self.build_lines.note(self.build_line, self.dump_line);
        }
        self.build_open = bytes.last() != Some(&b'\n');
        self.build_at += bytes.len() as u64;
        Ok(())
    }

    /// The split, once the whole dump was written; or why the dump cannot be split.
    pub fn finish(mut self) -> Result<Split<B, O, P>, String> {
        if let Some(dest) = self.streaming.take() {
            let _ = dest; // a last line without a newline, already written
        } else if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.whole(&line).map_err(|e| e.to_string())?;
        }
        if self.refused.is_none() && self.delimiter != ";" {
            self.refuse(format!(
                "the dump ends with DELIMITER {} in force",
                self.delimiter
            ));
        }
        if self.refused.is_none() && !self.databases_seen {
            self.refuse(
                "it has no `-- Current Database:` marker (a --compact or --skip-comments dump, or one database dumped without --databases)"
                    .into(),
            );
        }
        if let Some(why) = self.refused {
            return Err(why);
        }
        let patches = self
            .forward
            .iter()
            .filter_map(|(offset, name, width)| {
                let k = *self.index.get(name)?;
                let mut bytes = quote_ident(&(self.shadow)(k)).into_bytes();
                bytes.resize(*width, b' ');
                Some(Patch {
                    offset: *offset,
                    bytes,
                })
            })
            .collect();
        let mut tail = self.position_lines;
        tail.extend_from_slice(&self.tail);
        let mut out = self.out;
        let flushed = out
            .build
            .flush()
            .and_then(|()| out.objects.flush())
            .and_then(|()| out.part.flush());
        flushed.map_err(|e| e.to_string())?;
        Ok(Split {
            outputs: out,
            databases: self.dbs,
            creates: self.creates,
            patches,
            tail,
            plan: self.plan.map(PlanBuilder::finish),
            position: self.filter.position(),
            skipped_lines: self.skipped_lines,
            build_bytes: self.build_at,
            build_lines: self.build_lines,
        })
    }
}

impl<B: Write, O: Write, P: Write> Write for Splitter<B, O, P> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut chunk = buf;
        while !chunk.is_empty() {
            let (piece, ends) = match newline(chunk) {
                Some(i) => (&chunk[..=i], true),
                None => (chunk, false),
            };
            chunk = &chunk[piece.len()..];
            self.take(piece, ends)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.build.flush()?;
        self.out.objects.flush()?;
        self.out.part.flush()
    }
}

/// The first `MARKER_MAX` bytes of `line` as text, trimmed.
fn head_text(line: &[u8]) -> String {
    let head = &line[..line.len().min(MARKER_MAX)];
    String::from_utf8_lossy(head).trim().to_string()
}

/// Append `bytes` to `buf`, refusing the dump once it holds more than [`TAIL_MAX`].
fn bounded_push(buf: &mut Vec<u8>, bytes: &[u8], refused: &mut Option<String>) {
    if buf.len() + bytes.len() > TAIL_MAX {
        refused.get_or_insert(format!(
            "its position statements and trailer take more than {} MiB",
            TAIL_MAX >> 20
        ));
        return;
    }
    buf.extend_from_slice(bytes);
}

/// The name in a marker's backquotes or quotes: `` `a` `` or `'a'`.
fn marker_name(rest: &str) -> String {
    let r = rest.trim();
    let r = r
        .strip_prefix('`')
        .and_then(|s| s.strip_suffix('`'))
        .map(|s| s.replace("``", "`"))
        .or_else(|| {
            r.strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .map(str::to_string)
        });
    r.unwrap_or_else(|| rest.trim().to_string())
}

/// The length of the backquoted identifier `bytes` starts with (backquotes included) and
/// the name it quotes, or `None` when it does not start with one.
fn backquoted(bytes: &[u8]) -> Option<(usize, String)> {
    if bytes.first() != Some(&b'`') {
        return None;
    }
    let mut name = Vec::new();
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            if bytes.get(i + 1) == Some(&b'`') {
                name.push(b'`');
                i += 2;
                continue;
            }
            return Some((i + 1, String::from_utf8_lossy(&name).into_owned()));
        }
        name.push(bytes[i]);
        i += 1;
    }
    None
}

/// The (possibly qualified) name of the trigger a `/*!50003 CREATE*/ ... TRIGGER name ...`
/// line creates, as the dump quotes it.
fn trigger_name(t: &str) -> Option<String> {
    if !t.starts_with("/*!50003 CREATE*/") {
        return None;
    }
    let at = t.find("TRIGGER ")? + "TRIGGER ".len();
    let rest = t[at..].trim_start();
    let ident = |s: &str| -> Option<usize> {
        if s.starts_with('`') {
            backquoted(s.as_bytes()).map(|(n, _)| n)
        } else {
            let n = s
                .find(|c: char| c.is_whitespace() || c == '.')
                .unwrap_or(s.len());
            (n > 0).then_some(n)
        }
    };
    let mut n = ident(rest)?;
    if rest[n..].starts_with('.') {
        n += 1 + ident(&rest[n + 1..])?;
    }
    Some(rest[..n].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shortened `mariadb-dump --gtid --master-data --routines --events --triggers
    /// --all-databases --add-drop-database` of 10.11: database `a-b` (first, as the dump
    /// sorts) with a trigger, a foreign key into `a_b` (later in the dump) and a view; `a_b`
    /// with a sequence, a table referenced by it, a trigger, an event and a routine; `mysql`
    /// and the job queue; the final views in later sections, the position and the trailer.
    const DUMP: &str = "\
/*M!999999\\- enable the sandbox mode */ 
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB
/*!40101 SET NAMES utf8mb4 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
CHANGE MASTER TO MASTER_USE_GTID=slave_pos;
-- CHANGE MASTER TO MASTER_LOG_FILE='bin.000001', MASTER_LOG_POS=4947;

--
-- Current Database: `a-b`
--

/*!40000 DROP DATABASE IF EXISTS `a-b`*/;

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `a-b` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;

USE `a-b`;

--
-- Table structure for table `café`
--

DROP TABLE IF EXISTS `café`;
CREATE TABLE `café` (
  `id` int(11) NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB;

--
-- Dumping data for table `café`
--

LOCK TABLES `café` WRITE;
INSERT INTO `café` VALUES
(1),
(2);
UNLOCK TABLES;
/*!50003 SET @saved_cs_client      = @@character_set_client */ ;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `café_bi` BEFORE INSERT ON `café` FOR EACH ROW SET NEW.id = NEW.id 
*/;;
DELIMITER ;
/*!50003 SET character_set_client  = @saved_cs_client */ ;

--
-- Table structure for table `order line`
--

DROP TABLE IF EXISTS `order line`;
CREATE TABLE `order line` (
  `id` int(11) NOT NULL,
  `customer_id` int(11) NOT NULL,
  CONSTRAINT `order line_ibfk_1` FOREIGN KEY (`customer_id`) REFERENCES `a_b`.`customers` (`id`),
  CONSTRAINT `order line_ibfk_2` FOREIGN KEY (`id`) REFERENCES `elsewhere`.`t` (`id`)
) ENGINE=InnoDB
 PARTITION BY RANGE (`id`)
(PARTITION `p0` VALUES LESS THAN (100) ENGINE = InnoDB,
 PARTITION `pmax` VALUES LESS THAN MAXVALUE ENGINE = InnoDB);

--
-- Dumping data for table `order line`
--

INSERT INTO `order line` VALUES (1,1);

--
-- Temporary table structure for view `vue`
--

/*!50001 DROP VIEW IF EXISTS `vue`*/;
/*!50001 CREATE VIEW `vue` AS SELECT
 1 AS `id` */;

--
-- Dumping routines for database 'a-b'
--

--
-- Current Database: `a_b`
--

/*!40000 DROP DATABASE IF EXISTS `a_b`*/;

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `a_b` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;

USE `a_b`;

--
-- Sequence structure for `seq`
--

DROP SEQUENCE IF EXISTS `seq`;
CREATE SEQUENCE `seq` start with 100 minvalue 1 maxvalue 9223372036854775806 increment by 5 cache 1000 nocycle ENGINE=InnoDB;
DO SETVAL(`seq`, 5100, 0);

--
-- Table structure for table `customers`
--

CREATE TABLE `customers` (`id` int(11) NOT NULL) ENGINE=InnoDB;
INSERT INTO `customers` VALUES (1),(2);

--
-- Table structure for table `orders`
--

CREATE TABLE `orders` (
  `customer_id` int(11) NOT NULL,
  CONSTRAINT `orders_ibfk_1` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`),
  CONSTRAINT `orders_ibfk_2` FOREIGN KEY (`customer_id`) REFERENCES `a-b`.`café` (`id`)
) ENGINE=InnoDB;
INSERT INTO `orders` VALUES (1);
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER orders_1 BEFORE INSERT ON orders FOR EACH ROW SET NEW.customer_id = NEW.customer_id 
*/;;
DELIMITER ;

--
-- Dumping events for database 'a_b'
--
/*!50106 DROP EVENT IF EXISTS `ev` */;
DELIMITER ;;
/*!50106 CREATE*/ /*!50106 EVENT `ev` ON SCHEDULE EVERY 1 DAY DO DELETE FROM orders */ ;;
DELIMITER ;

--
-- Dumping routines for database 'a_b'
--
/*!50003 DROP FUNCTION IF EXISTS `f` */;
DELIMITER ;;
CREATE DEFINER=`root`@`localhost` FUNCTION `f`() RETURNS int(11)
RETURN 1
;;
DELIMITER ;

--
-- Current Database: `mysql`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `mysql`;

USE `mysql`;

--
-- Table structure for table `db`
--

DROP TABLE IF EXISTS `db`;
CREATE TABLE `db` (`Host` char(255)) ENGINE=Aria;
INSERT INTO `db` VALUES ('%');

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
-- Current Database: `a-b`
--

USE `a-b`;

--
-- Final view structure for view `vue`
--

/*!50001 DROP VIEW IF EXISTS `vue`*/;
/*!50001 VIEW `vue` AS select `café`.`id` AS `id` from `café` */;

--
-- Current Database: `mysql`
--

USE `mysql`;

--
-- Final view structure for view `user`
--

/*!50001 VIEW `user` AS select 1 */;

-- The deferred gtid setting for slave corresponding to the master-data CHANGE-MASTER follows

SET GLOBAL gtid_slave_pos='0-1-19';
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

-- Dump completed on 2026-12-01 13:47:13
";

    /// The shadow names of the tests.
    fn shadow(k: usize) -> String {
        format!("#dbjobs7_{k}")
    }

    /// A split into memory.
    type InMemory = Split<Vec<u8>, Vec<u8>, Vec<u8>>;

    /// `build.sql` (patched) and `objects.sql` (composed) of `dump` fed in chunks of
    /// `size` bytes, with the split.
    fn split(dump: &[u8], size: usize) -> Result<(String, String, InMemory), String> {
        let out = Outputs {
            build: Vec::new(),
            objects: Vec::new(),
            part: Vec::new(),
        };
        let mut s = Splitter::new(out, shadow, true);
        for chunk in dump.chunks(size) {
            s.write_all(chunk).unwrap();
        }
        let mut split = s.finish()?;
        let mut build = std::mem::take(&mut split.outputs.build);
        for p in &split.patches {
            let at = p.offset as usize;
            build[at..at + p.bytes.len()].copy_from_slice(&p.bytes);
        }
        let mut objects = std::mem::take(&mut split.outputs.objects);
        objects.extend_from_slice(&split.outputs.part);
        objects.extend_from_slice(&split.tail);
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        Ok((text(build), text(objects), split))
    }

    #[test]
    fn tables_are_built_under_shadow_names() {
        let (build, _, split) = split(DUMP.as_bytes(), DUMP.len()).unwrap();
        assert_eq!(split.databases, ["a-b", "a_b"]);
        assert_eq!(
            split.creates[1],
            (
                "a_b".to_string(),
                "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `a_b` /*!40100 DEFAULT CHARACTER SET utf8mb4 */".to_string()
            )
        );
        // build.sql: the shadow databases and their tables, nothing else.
        for want in [
            "-- Current Database: `#dbjobs7_0`\n",
            "USE `#dbjobs7_0`;\n",
            "USE `#dbjobs7_1`;\n",
            "INSERT INTO `café` VALUES\n(1),\n(2);\n",
            "DO SETVAL(`seq`, 5100, 0);\n",
            "REFERENCES `customers` (`id`),\n",
            "REFERENCES `#dbjobs7_0`.`café` (`id`)\n",
            "(PARTITION `p0` VALUES LESS THAN (100) ENGINE = InnoDB,\n",
            "/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n",
        ] {
            assert!(build.contains(want), "{want}\n{build}");
        }
        // The reference to the later `a_b`, patched in place (padding before the dot), and
        // the one to a database not in the dump left alone.
        let padded = format!(
            "REFERENCES `#dbjobs7_1`{}.`customers`",
            " ".repeat(quote_ident(&shadow(usize::MAX)).len() - 12)
        );
        assert!(build.contains(&padded), "{build}");
        let elsewhere = format!(
            "REFERENCES `elsewhere`{}.`t` (`id`)",
            " ".repeat(quote_ident(&shadow(usize::MAX)).len() - 11)
        );
        assert!(build.contains(&elsewhere), "{build}");
        for never in [
            "TRIGGER",
            "VIEW",
            "EVENT",
            "FUNCTION",
            "mysql",
            "replication_manager_schema",
            "\nCHANGE MASTER",
            "gtid_slave_pos",
            "`a-b`",
            "`a_b`",
        ] {
            assert!(!build.contains(never), "{never}\n{build}");
        }
        assert_eq!(split.build_bytes, build.len() as u64);
    }

    #[test]
    fn objects_follow_under_the_live_names_after_the_system_schemas() {
        let (_, objects, split) = split(DUMP.as_bytes(), DUMP.len()).unwrap();
        // objects.sql: header, mysql, the objects under live names, position, trailer.
        let at = |s: &str| objects.find(s).unwrap_or_else(|| panic!("{s}\n{objects}"));
        assert!(objects.starts_with("/*M!999999"));
        assert!(at("SET NAMES utf8mb4") < at("USE `mysql`;"));
        assert!(
            at("INSERT INTO `db` VALUES ('%');") < at("USE `a-b`;\n/*!50003 SET @saved_cs_client")
        );
        assert!(
            at("/*!50032 DROP TRIGGER IF EXISTS `café_bi` */;;\n/*!50003 CREATE*/")
                > at("USE `a-b`;")
        );
        assert!(
            at("USE `a_b`;\nDELIMITER ;;\n/*!50032 DROP TRIGGER IF EXISTS orders_1 */;;\n")
                > at("CREATE VIEW `vue` AS SELECT")
        );
        assert!(at("EVENT `ev`") < at("FUNCTION `f`"));
        assert!(at("USE `a-b`;\n\n--\n-- Final view") > at("FUNCTION `f`"));
        // The system schema's later sections stay with it, before the user objects.
        assert!(at("VIEW `user` AS select 1") < at("USE `a-b`;\n/*!50003"));
        assert!(at("CHANGE MASTER TO MASTER_USE_GTID=slave_pos;") > at("VIEW `vue` AS select"));
        assert!(at("SET GLOBAL gtid_slave_pos='0-1-19';") > at("CHANGE MASTER TO MASTER_USE_GTID"));
        assert!(objects.ends_with("-- Dump completed on 2026-12-01 13:47:13\n"));
        for never in [
            "#dbjobs",
            "replication_manager_schema",
            "INSERT INTO `café`",
            "CREATE TABLE `orders`",
            "SETVAL",
        ] {
            assert!(!objects.contains(never), "{never}\n{objects}");
        }
        assert_eq!(split.position.unwrap().gtid, "0-1-19");
        assert!(split.skipped_lines > 5);
    }

    #[test]
    fn the_plan_indexes_build_sql() {
        let (build, _, split) = split(DUMP.as_bytes(), DUMP.len()).unwrap();
        let plan = split.plan.unwrap().unwrap();
        let mut tables: Vec<String> = plan.units.iter().flat_map(|u| u.tables.clone()).collect();
        tables.sort();
        assert_eq!(
            tables,
            [
                "#dbjobs7_0.café",
                "#dbjobs7_0.order line",
                "#dbjobs7_1.customers",
                "#dbjobs7_1.orders"
            ]
        );
        let text = |spans: &[super::super::plan::Span]| -> String {
            spans
                .iter()
                .map(|s| &build[s.start as usize..s.end as usize])
                .collect()
        };
        let first = text(&plan.first);
        assert!(first.contains("USE `#dbjobs7_1`;"), "{first}");
        assert!(first.contains("CREATE SEQUENCE `seq`"), "{first}");
        for u in &plan.units {
            let t = text(&u.spans);
            assert!(t.starts_with("USE `#dbjobs7_"), "{t}");
            assert!(t.contains("CREATE TABLE"), "{t}");
        }
        // Every line of build.sql is the dump's line it came from.
        let dump: Vec<&str> = DUMP.split_inclusive('\n').collect();
        for (i, l) in build.split_inclusive('\n').enumerate() {
            let d = split.build_lines.dump_line(i as u64 + 1).unwrap() as usize;
            let same = dump[d - 1] == l || l.contains("#dbjobs7_") || l.contains("`elsewhere` ");
            assert!(
                same,
                "build line {} is dump line {d}: {l:?} vs {:?}",
                i + 1,
                dump[d - 1]
            );
        }
    }

    #[test]
    fn chunks_of_any_size_split_the_same() {
        let whole = split(DUMP.as_bytes(), DUMP.len()).unwrap();
        for size in (1..=40).chain([100, 4097]) {
            let (b, o, s) = split(DUMP.as_bytes(), size).unwrap();
            assert_eq!(
                (b.as_str(), o.as_str()),
                (whole.0.as_str(), whole.1.as_str()),
                "{size}"
            );
            assert_eq!(s.plan, whole.2.plan, "{size}");
        }
    }

    #[test]
    fn long_lines_stream_where_their_section_goes() {
        let row = format!(
            "INSERT INTO `customers` VALUES {};\n",
            "(1),".repeat(300_000)
        );
        let body = format!("RETURN '{}'\n", "x".repeat(10_000));
        let dump = DUMP
            .replace("INSERT INTO `customers` VALUES (1),(2);\n", &row)
            .replace("RETURN 1\n", &body);
        let (build, objects, _) = split(dump.as_bytes(), 65_536).unwrap();
        assert!(build.contains(&row));
        assert!(!objects.contains("(1),(1)"));
        assert!(objects.contains(&body));
        assert!(!build.contains("xxxx"));
    }

    #[test]
    fn data_after_a_long_create_table_line_is_never_rewritten() {
        // A partition list longer than MARKER_MAX ends the CREATE TABLE; the rows after it
        // hold the text of a reference to a database of the dump, which stays as it is.
        let values: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
        let long = format!("(PARTITION p0 VALUES IN ({}));\n", values.join(","));
        let row = "INSERT INTO `t` VALUES ('REFERENCES `a_b`.`customers` (`id`)');\n";
        let dump = DUMP.replace(
            "CREATE TABLE `customers` (`id` int(11) NOT NULL) ENGINE=InnoDB;\n",
            &format!("CREATE TABLE `customers` (`id` int(11) NOT NULL) ENGINE=InnoDB\n PARTITION BY LIST (`id`)\n{long}{row}"),
        );
        for size in [100, 4096, dump.len()] {
            let (build, _, _) = split(dump.as_bytes(), size).unwrap();
            assert!(build.contains(&long), "{size}");
            assert!(build.contains(row), "{size}");
        }
    }

    #[test]
    fn dumps_that_cannot_be_split_are_refused() {
        let refused = |dump: &str| {
            split(dump.as_bytes(), 7)
                .err()
                .unwrap_or_else(|| panic!("{dump}"))
        };
        let compact = "/*!40101 SET NAMES utf8mb4 */;\nCREATE TABLE `t` (`a` int);\nINSERT INTO `t` VALUES (1);\n";
        assert!(refused(compact).contains("Current Database"));
        assert!(refused("-- a dump\nSELECT 1;\nSELEC broken;\n").contains("Current Database"));
        let single = "-- Table structure for table `t`\nCREATE TABLE `t` (`a` int);\n";
        assert!(refused(single).contains("before any"));
        let nouse = "-- Current Database: `a`\n-- Table structure for table `t`\nCREATE TABLE `t` (`a` int);\n";
        assert!(refused(nouse).contains("does not follow a USE"));
        let delimited = "-- Current Database: `a`\nUSE `a`;\n-- Table structure for table `t`\nDELIMITER ;;\nSELECT 1;;\n-- Table structure for table `u`\n";
        assert!(refused(delimited).contains("DELIMITER ;;"));
        let other = "-- Current Database: `a`\nUSE `b`;\n";
        assert!(refused(other).contains("names another database"));
        let late = format!("{DUMP}-- Current Database: `z`\nUSE `z`;\n");
        assert!(refused(&late).contains("follows the dump's trailer"));
    }

    #[test]
    fn names_are_read_as_the_dump_quotes_them() {
        assert_eq!(backquoted(b"`a``b`.`t`"), Some((6, "a`b".to_string())));
        assert_eq!(backquoted(b"`open"), None);
        assert_eq!(marker_name(" `x``y` "), "x`y");
        assert_eq!(marker_name("'a-b'"), "a-b");
        let t = "/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`%`*/ /*!50003 TRIGGER `t r` BEFORE";
        assert_eq!(trigger_name(t).as_deref(), Some("`t r`"));
        let t = "/*!50003 CREATE*/ /*!50003 TRIGGER d.tr AFTER INSERT";
        assert_eq!(trigger_name(t).as_deref(), Some("d.tr"));
        assert_eq!(trigger_name("CREATE PROCEDURE p()"), None);
    }
}

#[cfg(test)]
mod bounded {
    use super::*;
    use crate::logical::plan::tests::heap;

    /// A file of `tests/bad-inputs/gzip/`, decompressed.
    fn bad_input(name: &str) -> Vec<u8> {
        use std::io::Read;
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../tests/bad-inputs/gzip/"
        );
        let gz = std::fs::read(format!("{path}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut sql = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut sql)
            .unwrap();
        sql
    }

    /// Split `dump` into sinks in 1 MiB pieces, as the receive does: the plan of the split
    /// or its refusal, and the heap peak of it all.
    fn split_and_peak(dump: &[u8]) -> (Result<Result<DumpPlan, String>, String>, usize) {
        heap::peak_of(|| {
            let out = Outputs {
                build: io::sink(),
                objects: io::sink(),
                part: io::sink(),
            };
            let mut s = Splitter::new(out, |k| format!("#dbjobs1_new{k}"), true);
            for chunk in dump.chunks(1 << 20) {
                s.write_all(chunk).unwrap();
            }
            s.finish()
                .map(|split| split.plan.expect("a plan was asked for"))
        })
    }

    #[test]
    fn crafted_dumps_are_split_or_refused_in_bounded_memory() {
        // 48 MiB of header comment lines: no database, refused.
        let (split, peak) = split_and_peak(&bad_input("plan_mem_header_lines.sql.gz"));
        let why = split.expect_err("refused");
        assert!(why.contains("no `-- Current Database:` marker"), "{why}");
        assert!(peak < 4 * SPLIT_BUDGET, "{peak} bytes of heap");
        // 64 MiB of table markers in one database: split (the server refuses the `x` lines
        // of build.sql, in the shadow database), the plan over its budget.
        let (split, peak) = split_and_peak(&bad_input("plan_mem_sections.sql.gz"));
        let plan = split.expect("split");
        assert!(plan.unwrap_err().contains("more than 32 MiB of memory"));
        assert!(peak < 4 * SPLIT_BUDGET, "{peak} bytes of heap");
        // Hundreds of thousands of databases: past the budget, refused.
        let mut dump = Vec::new();
        for i in 0..400_000u32 {
            writeln!(dump, "-- Current Database: `d{i}`\nUSE `d{i}`;").unwrap();
        }
        let (split, peak) = split_and_peak(&dump);
        let why = split.expect_err("refused");
        assert!(why.contains("more than 32 MiB of memory"), "{why}");
        assert!(peak < 4 * SPLIT_BUDGET, "{peak} bytes of heap");
    }
}
