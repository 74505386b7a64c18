//! Physical restore: an xbstream from `mariadb-backup` (or `xtrabackup`) into the local server.
//!
//! Used by the `reseed*backup` and `flashback*backup` tasks. The job runs in phases, and
//! nothing that changes the live server starts before the last read-only phase succeeded:
//!
//! 1. **Receive and extract**: the socket is read through [`super::xbstream::forward`],
//!    which checks every chunk and drops the sender's stale padding, into `mbstream -x`.
//!    A stream cut short fails the job here.
//! 2. **Prepare**: `mariadb-backup --prepare --export` (writes a `.cfg` beside each `.ibd`).
//! 3. **Read**: the replication position from `xtrabackup_binlog_info` (or `xtrabackup_info`),
//!    and, from a temporary read-only `mariadbd` started on the prepared backup, every
//!    database, table definition, row count, view, trigger, routine and event. Definitions
//!    come from the server's own `SHOW CREATE`, not from patched `.frm` bytes, so views,
//!    routines, triggers and events survive (the shipped scripts lost them).
//! 4. **Restore**, by setting `restore_mode`:
//!    * `online` (default): the live server keeps running. Per database: drop and recreate,
//!      then per InnoDB table `CREATE` + `DISCARD TABLESPACE` + move `.ibd`/`.cfg` in +
//!      `IMPORT TABLESPACE`; MyISAM/Aria/CSV/Archive data files are moved over the new empty
//!      table's and flushed; then views, triggers, routines and events. The `mysql` schema
//!      (accounts) and the other system schemas are left as the node has them.
//!    * `full`: stop the service, move the datadir aside, `--move-back`, fix ownership,
//!      start and wait; the old datadir is put back if the server does not come up, and
//!      deleted only after success. The node then has the backup's accounts too.
//! 5. **Verify**: every restored table opens and has the row count the temporary server saw.
//! 6. **Position**: `gtid_slave_pos` + `START SLAVE` (legacy and state variants), or the JSON
//!    payload replication-manager applies itself (payload variant).
//!
//! Every statement goes through [`Host::query`], whose session has `sql_log_bin=0`, so
//! nothing of the restore reaches the node's binary log.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::xbstream::{self, StreamSummary};
use crate::{Intent, Mode, RestoreSettings, Text};
use dbjobs_kit::copy::human_bytes;
use dbjobs_kit::service;
use dbjobs_kit::sql::{is_gtid_list, is_system_schema, qualified, quote_ident};
use dbjobs_kit::tool::{find_tool, RunningTool, ToolCommand};
use dbjobs_sdk::TableVariant;
use dbjobs_sdk::{Host, Job, Outcome};

/// Setting choosing how the backup is restored: `online` (default) or `full`.
pub const MODE_SETTING: &str = "restore_mode";
/// Setting asking to restore the backup's accounts in online mode (not implemented: the
/// node's accounts are kept, with a warning).
pub const ACCOUNTS_SETTING: &str = "restore_accounts";
/// How long the temporary server may take to answer.
const TEMP_SERVER_DEADLINE: Duration = Duration::from_secs(120);
/// The account the temporary server creates for this job (online mode).
const TEMP_USER: &str = "dbjobs_restore";

/// The replication position a backup was taken at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Binary log file name, e.g. `mariadb-bin.000001`.
    pub file: String,
    /// Position in that file.
    pub pos: String,
    /// GTID list, e.g. `0-1-16` (may be empty when the source had no GTID yet).
    pub gtid: String,
}

impl Position {
    /// The payload replication-manager 3.x applies itself (PROTOCOL.md §3).
    pub fn payload(&self) -> String {
        serde_json::json!({
            "vendor": "mariadb",
            "gtid": self.gtid,
            "binLogFile": self.file,
            "binLogPos": self.pos,
        })
        .to_string()
    }
}

/// Read the position from a prepared backup: `xtrabackup_binlog_info`
/// (`file<TAB>pos<TAB>gtid`), else the `binlog_pos` line of `xtrabackup_info`. `None` when
/// the source had no binary log. The GTID is validated before it can reach SQL.
pub fn read_position(backup: &Path) -> Result<Option<Position>, String> {
    let mut found = None;
    if let Ok(text) = fs::read_to_string(backup.join("xtrabackup_binlog_info")) {
        if let Some(line) = text.lines().find(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split('\t').map(str::trim).collect();
            if f.len() >= 2 {
                found = Some(Position {
                    file: f[0].to_string(),
                    pos: f[1].to_string(),
                    gtid: f.get(2).map(|s| s.to_string()).unwrap_or_default(),
                });
            }
        }
    }
    if found.is_none() {
        if let Ok(text) = fs::read_to_string(backup.join("xtrabackup_info")) {
            found = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("binlog_pos = "))
                .and_then(parse_binlog_pos_line);
        }
    }
    if let Some(p) = &found {
        if !is_gtid_list(&p.gtid) {
            return Err(format!(
                "the backup's GTID position {:?} is not a valid GTID list; the backup metadata is damaged",
                p.gtid
            ));
        }
        if !p.pos.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "the backup's binlog position {:?} is not a number",
                p.pos
            ));
        }
    }
    Ok(found)
}

/// Parse `filename 'mariadb-bin.000001', position '2716', GTID of the last change '0-1-12'`.
fn parse_binlog_pos_line(line: &str) -> Option<Position> {
    let quoted: Vec<&str> = line.split('\'').skip(1).step_by(2).collect();
    let file = quoted.first()?.to_string();
    let pos = quoted.get(1)?.to_string();
    let gtid = quoted.get(2).map(|s| s.to_string()).unwrap_or_default();
    Some(Position { file, pos, gtid })
}

/// Restore an xbstream received on `stream`, using `staging` (private, removed by the
/// caller) for the extracted backup. See the module documentation for the phases.
pub fn restore(
    host: &Host<'_>,
    job: &Job,
    intent: Intent,
    stream: &mut dyn Read,
    staging: &Path,
) -> Result<Outcome, String> {
    let started = Instant::now();
    let settings = RestoreSettings::read(host).text()?;
    let mode = settings.restore_mode;
    let restore_accounts = settings.restore_accounts;
    let what = intent.as_str();
    let backup = staging.join("backup");
    fs::create_dir(&backup).map_err(|e| format!("cannot create {}: {e}", backup.display()))?;

    // 1. Receive and extract.
    let summary = receive(host, stream, &backup).map_err(|e| {
        format!("{what} failed while receiving the backup, the server was not touched: {e}")
    })?;
    host.info(&format!(
        "received {} ({} stale bytes dropped), {} files",
        human_bytes(summary.bytes_received),
        summary.stale_bytes,
        summary.files
    ));
    for required in ["xtrabackup_checkpoints", "xtrabackup_info"] {
        if !backup.join(required).is_file() {
            return Err(format!(
                "{what} failed, the server was not touched: the stream has no {required}, so the backup is incomplete (cut between two files?); retry the job"
            ));
        }
    }

    // 2. Prepare.
    host.progress("preparing the backup");
    prepare(host, &backup)
        .map_err(|e| format!("{what} failed while preparing, the server was not touched: {e}"))?;

    // 3. Read everything needed before touching the live server.
    let position = read_position(&backup)?;
    if position.is_none() {
        host.warn("the backup has no binary log position (the source ran without log-bin)");
    }
    let datadir = PathBuf::from(
        host.query_value("SELECT @@datadir", &[])
            .text()?
            .ok_or("the server reports no @@datadir")?,
    );
    let owner = fs::metadata(&datadir)
        .map_err(|e| format!("cannot stat the datadir {}: {e}", datadir.display()))?;
    host.progress("reading the backup's definitions");
    let catalog = {
        let temp = TempServer::start(host, &backup, staging, mode == Mode::Online)
            .map_err(|e| format!("{what} failed, the server was not touched: {e}"))?;
        let catalog = Catalog::read(&temp, mode == Mode::Online);
        temp.shutdown();
        catalog.map_err(|e| {
            format!(
                "{what} failed reading the backup's definitions, the server was not touched: {e}"
            )
        })?
    };

    // 4. Restore.
    let mut notes = Vec::new();
    match mode {
        Mode::Online => {
            if restore_accounts {
                host.warn("restore_accounts=true is not implemented for online restores: the node keeps its own accounts");
                notes.push("accounts kept (restore_accounts not implemented)".to_string());
            }
            restore_online(host, &catalog, &backup, &datadir, &owner)?;
        }
        Mode::Full => restore_full(host, job, &backup, &datadir, &owner)?,
    }

    // 5. Verify.
    host.progress("verifying the restored tables");
    verify(host, &catalog)?;

    // 6. Position.
    let mut outcome_payload = None;
    let position_text = match &position {
        None => "no replication position in the backup".to_string(),
        Some(p) if job.variant == TableVariant::Payload => {
            outcome_payload = Some(p.payload());
            format!("GTID {} (left to replication-manager)", p.gtid)
        }
        Some(p) => apply_position(host, p, &mut notes)?,
    };

    let tables = catalog
        .tables
        .iter()
        .filter(|t| t.kind == Kind::Table)
        .count();
    let mut result = format!(
        "{what} ({} restore) done in {:.1} s: {} received{}, {} files, {} databases, {} tables ({} InnoDB imported), {} views, {} triggers, {} routines, {} events; {position_text}",
        mode.as_str(),
        started.elapsed().as_secs_f64(),
        human_bytes(summary.bytes_received),
        if summary.stale_bytes > 0 {
            format!(" ({} bytes of stale padding ignored)", summary.stale_bytes)
        } else {
            String::new()
        },
        summary.files,
        catalog.databases.len(),
        tables,
        catalog
            .tables
            .iter()
            .filter(|t| t.kind == Kind::Table && t.is_innodb())
            .count(),
        catalog.tables.iter().filter(|t| t.kind == Kind::View).count(),
        catalog.triggers.len(),
        catalog.routines.len(),
        catalog.events.len(),
    );
    if !notes.is_empty() {
        result.push_str("; ");
        result.push_str(&notes.join("; "));
    }
    let outcome = Outcome::new(result);
    Ok(match outcome_payload {
        Some(p) => outcome.with_payload(p),
        None => outcome,
    })
}

/// Phase 1: the socket through the validator into `mbstream -x -C <backup>`.
fn receive(host: &Host<'_>, stream: &mut dyn Read, backup: &Path) -> Result<StreamSummary, String> {
    let tool = find_tool(
        &["mbstream", "xbstream"],
        Some(RestoreSettings::read(host).text()?.mbstream_tool.as_str()),
    )
    .text()?;
    let mut extractor = ToolCommand::new(&tool, None)
        .arg("-x")
        .arg("-C")
        .arg(backup)
        .piped_stdin()
        .log_stderr()
        .spawn(|_| {})
        .text()?;
    let stdin = extractor
        .take_stdin()
        .ok_or("the extractor has no stdin pipe")?;
    let min_free = super::receive::min_free_bytes(host)?;
    let mut out = super::receive::SpaceCheckedWriter::new(stdin, backup, min_free);
    let mut next_report = 0u64;
    // The extractor verifies every chunk's checksum itself.
    let forwarded = xbstream::forward(stream, &mut out, false, &mut |n| {
        if host.cancelled() {
            return Err("the job was cancelled".into());
        }
        if n >= next_report {
            host.progress(&format!("{} received", human_bytes(n)));
            next_report = n + (64 << 20);
        }
        Ok(())
    });
    drop(out);
    match forwarded {
        Err(e) => {
            drop(extractor); // killed: its partial output is discarded with the staging dir
            Err(e)
        }
        Ok(summary) => {
            let exit = extractor.wait_logged(host).text()?;
            if !exit.success() {
                return Err(format!("extracting the stream failed: {}", exit.failure()));
            }
            Ok(summary)
        }
    }
}

/// Phase 2: `mariadb-backup --prepare --export`.
fn prepare(host: &Host<'_>, backup: &Path) -> Result<(), String> {
    let tool = backup_tool(host)?;
    let exit = ToolCommand::new(&tool, None)
        .arg("--no-defaults")
        .arg("--prepare")
        .arg("--export")
        .arg(format!("--target-dir={}", backup.display()))
        .run_logged(host)
        .text()?;
    if !exit.success() {
        return Err(exit.failure());
    }
    Ok(())
}

fn backup_tool(host: &Host<'_>) -> Result<PathBuf, String> {
    find_tool(
        &["mariadb-backup", "mariabackup", "xtrabackup"],
        Some(
            dbjobs_kit::tool::BackupToolSettings::read(host)
                .text()?
                .backup_tool
                .as_str(),
        ),
    )
    .text()
}

/// Random hex text for the temporary server's one-off password.
fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Write a 0600 file.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A read-only `mariadbd` on the prepared backup, reachable only through its own socket.
struct TempServer {
    server: RunningTool,
    client: PathBuf,
    option_file: PathBuf,
    error_log: PathBuf,
}

impl TempServer {
    /// Start it. With `with_account`, an init file creates a one-off account with a random
    /// password (the backup's own accounts are unknown to us); without, it runs with
    /// `--skip-grant-tables`, which leaves the backup's files untouched but hides events.
    fn start(
        host: &Host<'_>,
        backup: &Path,
        staging: &Path,
        with_account: bool,
    ) -> Result<TempServer, String> {
        let mariadbd = find_tool(
            &["mariadbd", "mysqld"],
            Some(RestoreSettings::read(host).text()?.mariadbd_tool.as_str()),
        )
        .text()?;
        let client = find_tool(
            &["mariadb", "mysql"],
            Some(RestoreSettings::read(host).text()?.mariadb_client.as_str()),
        )
        .text()?;
        let mut socket = staging.join("temp.sock");
        if socket.as_os_str().len() > 100 {
            // Unix socket paths are limited to 108 bytes.
            socket = PathBuf::from(format!("/tmp/dbjobs-{}-temp.sock", std::process::id()));
        }
        let error_log = staging.join("temp-server.err");
        let option_file = staging.join("temp-client.cnf");
        let mut cnf = format!("[client]\nsocket={}\n", socket.display());
        let config = backup.join("backup-my.cnf");
        let mut cmd = if config.is_file() {
            // What the backup tool wrote for this backup: page size, log size, undo layout.
            ToolCommand::new(&mariadbd, Some(&config))
        } else {
            ToolCommand::new(&mariadbd, None).arg("--no-defaults")
        };
        cmd = cmd.args([
            format!("--datadir={}", backup.display()),
            format!("--socket={}", socket.display()),
            format!("--pid-file={}", staging.join("temp.pid").display()),
            format!("--log-error={}", error_log.display()),
            format!("--tmpdir={}", staging.display()),
            "--skip-networking".into(),
            "--innodb-read-only".into(),
            "--skip-log-bin".into(),
            "--skip-slave-start".into(),
            "--event-scheduler=OFF".into(),
            "--innodb-buffer-pool-size=64M".into(),
            "--innodb-buffer-pool-load-at-startup=0".into(),
            "--innodb-buffer-pool-dump-at-shutdown=0".into(),
        ]);
        if with_account {
            let password = random_hex(16)?;
            let init = staging.join("temp-init.sql");
            write_private(
                &init,
                &format!(
                    "CREATE OR REPLACE USER '{TEMP_USER}'@'localhost' IDENTIFIED BY '{password}';\n\
                     GRANT ALL PRIVILEGES ON *.* TO '{TEMP_USER}'@'localhost';\n"
                ),
            )?;
            cmd = cmd.arg(format!("--init-file={}", init.display()));
            cnf.push_str(&format!("user={TEMP_USER}\npassword={password}\n"));
        } else {
            cmd = cmd.arg("--skip-grant-tables");
            cnf.push_str("user=root\n");
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cmd = cmd.arg("--user=root");
        }
        write_private(&option_file, &cnf)?;
        let server = cmd.spawn(|_| {}).text()?;
        let temp = TempServer {
            server,
            client,
            option_file,
            error_log,
        };
        let deadline = Instant::now() + TEMP_SERVER_DEADLINE;
        loop {
            if temp.query("SELECT 1").is_ok() {
                host.info("temporary server on the backup is up");
                return Ok(temp);
            }
            if !temp.alive() || Instant::now() >= deadline {
                return Err(format!(
                    "the temporary server on the prepared backup did not start: {}",
                    temp.log_tail()
                ));
            }
            if host.cancelled() {
                return Err("the job was cancelled".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the server process still runs (not a zombie).
    fn alive(&self) -> bool {
        let Some(pid) = self.server.pid() else {
            return false;
        };
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }

    /// The `[ERROR]` lines (or the last lines) of its error log.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.error_log).unwrap_or_default();
        let errors: Vec<&str> = text.lines().filter(|l| l.contains("[ERROR]")).collect();
        let lines: Vec<&str> = if errors.is_empty() {
            text.lines().collect()
        } else {
            errors
        };
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// Run one statement with the `mariadb` client in batch mode; values unescaped
    /// (`NULL` comes back as the text `NULL`).
    fn query(&self, sql: &str) -> Result<Vec<Vec<String>>, String> {
        let mut tool = ToolCommand::new(&self.client, Some(&self.option_file))
            .args(["--batch", "--skip-column-names", "-e", sql])
            .piped_stdout()
            .spawn(|_| {})
            .text()?;
        let mut out = Vec::new();
        if let Some(mut stdout) = tool.take_stdout() {
            stdout
                .read_to_end(&mut out)
                .map_err(|e| format!("reading the client's output failed: {e}"))?;
        }
        let exit = tool.wait().text()?;
        if !exit.success() {
            return Err(format!("{sql}: {}", exit.last_lines(3)));
        }
        Ok(parse_batch(&out))
    }

    /// Stop it (SIGTERM: a clean shutdown) and wait.
    fn shutdown(self) {
        if let Some(pid) = self.server.pid() {
            // SAFETY: plain syscall on our own child.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        let _ = self.server.wait();
    }
}

/// Parse `mariadb --batch` output: rows by newline, fields by tab, `\n \t \\ \0` unescaped.
fn parse_batch(out: &[u8]) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(out);
    text.lines()
        .map(|line| {
            line.split('\t')
                .map(|field| {
                    let mut s = String::with_capacity(field.len());
                    let mut chars = field.chars();
                    while let Some(c) = chars.next() {
                        if c != '\\' {
                            s.push(c);
                            continue;
                        }
                        match chars.next() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some('0') => s.push('\0'),
                            Some(other) => s.push(other),
                            None => s.push('\\'),
                        }
                    }
                    s
                })
                .collect()
        })
        .collect()
}

/// What kind of object a table entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Table,
    View,
    Sequence,
}

/// One table, view or sequence of the backup.
#[derive(Clone, Debug)]
struct TableDef {
    schema: String,
    name: String,
    kind: Kind,
    engine: String,
    create: String,
    /// Row count on the temporary server (base tables only).
    rows: Option<u64>,
}

impl TableDef {
    fn is_innodb(&self) -> bool {
        self.engine.eq_ignore_ascii_case("InnoDB")
    }
}

/// A trigger, routine or event: the statement that recreates it and the session it needs.
#[derive(Clone, Debug)]
struct ObjectDef {
    schema: String,
    name: String,
    sql_mode: String,
    time_zone: Option<String>,
    create: String,
    /// Events: whether it was enabled (recreated `DISABLE ON SLAVE`).
    enabled: bool,
}

/// Everything read from the temporary server.
#[derive(Debug, Default)]
struct Catalog {
    /// (name, CREATE DATABASE statement)
    databases: Vec<(String, String)>,
    tables: Vec<TableDef>,
    triggers: Vec<ObjectDef>,
    routines: Vec<ObjectDef>,
    events: Vec<ObjectDef>,
}

impl Catalog {
    fn read(temp: &TempServer, with_objects: bool) -> Result<Catalog, String> {
        let mut c = Catalog::default();
        for row in temp.query("SELECT schema_name FROM information_schema.schemata ORDER BY 1")? {
            let db = &row[0];
            if is_system_schema(db) {
                continue;
            }
            let create = temp
                .query(&format!("SHOW CREATE DATABASE {}", quote_ident(db)))?
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().nth(1))
                .ok_or_else(|| format!("no definition for database {db}"))?;
            c.databases.push((db.clone(), create));
        }
        let known: BTreeSet<&str> = c.databases.iter().map(|(d, _)| d.as_str()).collect();
        let rows = temp.query(
            "SELECT table_schema, table_name, table_type, IFNULL(engine,'') FROM information_schema.tables ORDER BY 1, 2",
        )?;
        for row in rows {
            let [schema, name, ttype, engine] = <[String; 4]>::try_from(row)
                .map_err(|_| "unexpected information_schema.tables output".to_string())?;
            if !known.contains(schema.as_str()) {
                continue;
            }
            let kind = match ttype.as_str() {
                "VIEW" => Kind::View,
                "SEQUENCE" => Kind::Sequence,
                _ => Kind::Table,
            };
            let q = qualified(&schema, &name);
            let create = if kind == Kind::View {
                temp.query(&format!("SHOW CREATE VIEW {q}"))?
            } else {
                temp.query(&format!("SHOW CREATE TABLE {q}"))?
            }
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().nth(1))
            .ok_or_else(|| format!("no definition for {schema}.{name}"))?;
            let rows = if kind == Kind::Table {
                let n = temp
                    .query(&format!("SELECT COUNT(*) FROM {q}"))?
                    .into_iter()
                    .next()
                    .and_then(|r| r.into_iter().next())
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("cannot count the rows of {schema}.{name}"))?;
                Some(n)
            } else {
                None
            };
            c.tables.push(TableDef {
                schema,
                name,
                kind,
                engine,
                create,
                rows,
            });
        }
        if !with_objects {
            return Ok(c);
        }
        c.triggers = read_objects(temp, &known, ObjectKind::Trigger)?;
        c.routines = read_objects(temp, &known, ObjectKind::Routine)?;
        c.events = read_objects(temp, &known, ObjectKind::Event)?;
        Ok(c)
    }
}

/// The kinds of [`ObjectDef`]: how the temporary server lists them and shows their
/// definitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ObjectKind {
    Trigger,
    Routine,
    Event,
}

impl ObjectKind {
    /// The query listing every object of this kind: schema, name, then the routine's type
    /// or the event's status.
    fn list_sql(self) -> &'static str {
        match self {
            ObjectKind::Trigger => {
                "SELECT trigger_schema, trigger_name FROM information_schema.triggers \
                 ORDER BY trigger_schema, event_object_table, action_timing, event_manipulation, action_order"
            }
            ObjectKind::Routine => {
                "SELECT routine_schema, routine_name, routine_type FROM information_schema.routines \
                 WHERE routine_type IN ('PROCEDURE','FUNCTION') ORDER BY 1, 2"
            }
            ObjectKind::Event => {
                "SELECT event_schema, event_name, status FROM information_schema.events ORDER BY 1, 2"
            }
        }
    }

    /// The `SHOW CREATE` statement of the object a row of [`ObjectKind::list_sql`] names.
    fn show_sql(self, row: &[String]) -> String {
        let q = qualified(&row[0], &row[1]);
        match self {
            ObjectKind::Trigger => format!("SHOW CREATE TRIGGER {q}"),
            ObjectKind::Routine => format!("SHOW CREATE {} {q}", row[2]),
            ObjectKind::Event => format!("SHOW CREATE EVENT {q}"),
        }
    }
}

/// Every object of `kind` in the databases `known`, with the statement that recreates it.
fn read_objects(
    temp: &TempServer,
    known: &BTreeSet<&str>,
    kind: ObjectKind,
) -> Result<Vec<ObjectDef>, String> {
    let mut out = Vec::new();
    for row in temp.query(kind.list_sql())? {
        if !known.contains(row[0].as_str()) {
            continue;
        }
        // Triggers and routines: Name, sql_mode, Create ..., ...
        // Events: Event, sql_mode, time_zone, Create Event, ...
        let r = first_row(temp, &kind.show_sql(&row))?;
        let (time_zone, create) = match kind {
            ObjectKind::Event => (r.get(2).cloned(), r.get(3)),
            ObjectKind::Trigger | ObjectKind::Routine => (None, r.get(2)),
        };
        out.push(ObjectDef {
            schema: row[0].clone(),
            name: row[1].clone(),
            sql_mode: r.get(1).cloned().unwrap_or_default(),
            time_zone,
            create: create.cloned().unwrap_or_default(),
            enabled: kind != ObjectKind::Event || row[2] == "ENABLED",
        });
    }
    Ok(out)
}

fn first_row(temp: &TempServer, sql: &str) -> Result<Vec<String>, String> {
    temp.query(sql)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{sql} returned nothing"))
}

/// Files of a table in a database directory: `<stem>.<ext>` and partitions `<stem>#P#...`.
fn table_files(dir: &Path, stem: &str, exts: &[&str]) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((base, ext)) = name.rsplit_once('.') else {
            continue;
        };
        if !exts.iter().any(|x| x.eq_ignore_ascii_case(ext)) {
            continue;
        }
        let part = base.strip_prefix(stem).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with("#P#") || rest.starts_with("#p#")
        });
        if part {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

/// The `.frm` stems in a directory (the file-system names of its tables).
fn frm_stems(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".frm").map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Move `from` to `to` (rename, or copy and delete across file systems) and give it the
/// live server's owner.
fn move_in(from: &Path, to: &Path, owner: &fs::Metadata) -> Result<(), String> {
    if fs::rename(from, to).is_err() {
        fs::copy(from, to)
            .and_then(|_| fs::remove_file(from))
            .map_err(|e| format!("cannot move {} to {}: {e}", from.display(), to.display()))?;
    }
    std::os::unix::fs::chown(to, Some(owner.uid()), Some(owner.gid()))
        .map_err(|e| format!("cannot give {} to the server's user: {e}", to.display()))
}

/// Run `sql` on the live server with the job's context in the error.
fn exec(host: &Host<'_>, sql: &str, params: &[&str]) -> Result<(), String> {
    host.query(sql, params)
        .map(|_| ())
        .map_err(|e| format!("{e} (statement: {})", shorten(sql)))
}

fn shorten(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.len() > 200 {
        let mut end = 200;
        while !one_line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &one_line[..end])
    } else {
        one_line
    }
}

/// Phase 4, online: recreate each database of the backup on the running server.
fn restore_online(
    host: &Host<'_>,
    catalog: &Catalog,
    backup: &Path,
    datadir: &Path,
    owner: &fs::Metadata,
) -> Result<(), String> {
    let saved_mode = host
        .query_value("SELECT @@SESSION.sql_mode", &[])
        .text()?
        .unwrap_or_default();
    let saved_tz = host
        .query_value("SELECT @@SESSION.time_zone", &[])
        .text()?
        .unwrap_or_else(|| "SYSTEM".into());
    exec(host, "SET SESSION foreign_key_checks=0", &[])?;
    let result = (|| -> Result<(), String> {
        for (db, create) in &catalog.databases {
            host.progress(&format!("restoring database {db}"));
            exec(
                host,
                &format!("DROP DATABASE IF EXISTS {}", quote_ident(db)),
                &[],
            )?;
            let before = subdirs(datadir)?;
            exec(host, create, &[])?;
            exec(host, &format!("USE {}", quote_ident(db)), &[])?;
            let live_dir = datadir.join(db_dir_name(&before, datadir, db)?);
            let backup_dir = backup.join(
                live_dir
                    .file_name()
                    .ok_or("a database directory has no name")?,
            );
            for t in catalog
                .tables
                .iter()
                .filter(|t| &t.schema == db && t.kind != Kind::View)
            {
                restore_table(host, t, &backup_dir, &live_dir, owner)?;
            }
        }
        exec(host, "SET SESSION sql_mode=''", &[])?;
        create_views(host, catalog)?;
        for t in &catalog.triggers {
            create_object(host, t, "trigger")?;
        }
        for r in &catalog.routines {
            create_object(host, r, "routine")?;
        }
        for e in &catalog.events {
            create_object(host, e, "event")?;
            if e.enabled {
                // The node is (or becomes) a replica: the master runs the events.
                exec(
                    host,
                    &format!(
                        "ALTER EVENT {} DISABLE ON SLAVE",
                        qualified(&e.schema, &e.name)
                    ),
                    &[],
                )?;
            }
        }
        Ok(())
    })();
    // Leave the session as it was, whatever happened.
    let _ = host.query("SET SESSION foreign_key_checks=1", &[]);
    let _ = host.query("SET SESSION sql_mode=?", &[&saved_mode]);
    let _ = host.query("SET SESSION time_zone=?", &[&saved_tz]);
    result
}

/// The directories in `dir`.
fn subdirs(dir: &Path) -> Result<BTreeSet<String>, String> {
    Ok(fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

/// The directory name of database `db`, which the live server just created: the one that
/// appeared since `before` (so names needing MariaDB's file-name encoding work too), or `db`
/// itself when the directory survived the `DROP DATABASE` (it held foreign files).
fn db_dir_name(before: &BTreeSet<String>, datadir: &Path, db: &str) -> Result<String, String> {
    let after = subdirs(datadir)?;
    let new: Vec<&String> = after.difference(before).collect();
    match new.as_slice() {
        [one] => Ok((*one).clone()),
        _ if datadir.join(db).is_dir() => Ok(db.to_string()),
        _ => Err(format!(
            "cannot find the directory of database {db:?} in {}",
            datadir.display()
        )),
    }
}

/// Create one table on the live server and bring its data in.
fn restore_table(
    host: &Host<'_>,
    t: &TableDef,
    backup_dir: &Path,
    live_dir: &Path,
    owner: &fs::Metadata,
) -> Result<(), String> {
    let q = qualified(&t.schema, &t.name);
    let before = frm_stems(live_dir);
    exec(host, &t.create, &[])?;
    let after = frm_stems(live_dir);
    let stem = after.difference(&before).next().cloned().ok_or_else(|| {
        format!(
            "cannot find the files of the new table {q} in {}",
            live_dir.display()
        )
    })?;
    if t.kind == Kind::Sequence {
        host.warn(&format!(
            "sequence {q} recreated from its definition; its current value is not restored"
        ));
        return Ok(());
    }
    if t.is_innodb() {
        let partitions = partition_names(backup_dir, &stem);
        if !partitions.is_empty() {
            return restore_partitions(host, t, &partitions, backup_dir, live_dir, &stem, owner);
        }
        let files = table_files(backup_dir, &stem, &["ibd", "cfg"]);
        if !files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "ibd"))
        {
            return Err(format!(
                "the backup has no .ibd file for InnoDB table {q} (looked for {stem}.ibd in {})",
                backup_dir.display()
            ));
        }
        exec(host, &format!("ALTER TABLE {q} DISCARD TABLESPACE"), &[])?;
        for f in &files {
            move_in(f, &live_dir.join(f.file_name().expect("a file")), owner)?;
        }
        exec(host, &format!("ALTER TABLE {q} IMPORT TABLESPACE"), &[])?;
        // The .cfg files are only for the import.
        for f in table_files(live_dir, &stem, &["cfg"]) {
            let _ = fs::remove_file(f);
        }
        return Ok(());
    }
    let exts = ["MYD", "MYI", "MAD", "MAI", "CSV", "CSM", "ARZ", "par"];
    let files = table_files(backup_dir, &stem, &exts);
    if files.is_empty() {
        // MEMORY, BLACKHOLE, FEDERATED...: the definition is all there is.
        return Ok(());
    }
    exec(host, &format!("FLUSH TABLES {q}"), &[])?;
    for f in &files {
        move_in(f, &live_dir.join(f.file_name().expect("a file")), owner)?;
    }
    exec(host, &format!("FLUSH TABLES {q}"), &[])?;
    Ok(())
}

/// The partitions of InnoDB table `stem` in a backup directory (`<stem>#P#<name>.ibd`).
fn partition_names(dir: &Path, stem: &str) -> Vec<String> {
    let prefix = format!("{stem}#P#");
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".ibd")
                        .and_then(|b| b.strip_prefix(&prefix))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// MariaDB cannot discard or import the tablespace of one partition: each partition's
/// `.ibd` is imported into a plain copy of the table, which is then exchanged with the
/// (empty) partition.
fn restore_partitions(
    host: &Host<'_>,
    t: &TableDef,
    partitions: &[String],
    backup_dir: &Path,
    live_dir: &Path,
    stem: &str,
    owner: &fs::Metadata,
) -> Result<(), String> {
    let q = qualified(&t.schema, &t.name);
    if partitions
        .iter()
        .any(|p| p.contains("#SP#") || p.contains("#sp#"))
    {
        return Err(format!(
            "{q} has subpartitions, which an online restore cannot import; use restore_mode=full"
        ));
    }
    let tmp_name = format!("{}#dbjobs", t.name);
    let tmp = qualified(&t.schema, &tmp_name);
    for p in partitions {
        exec(host, &format!("DROP TABLE IF EXISTS {tmp}"), &[])?;
        let before = frm_stems(live_dir);
        exec(host, &format!("CREATE TABLE {tmp} LIKE {q}"), &[])?;
        let tmp_stem = frm_stems(live_dir)
            .difference(&before)
            .next()
            .cloned()
            .ok_or_else(|| format!("cannot find the files of the work table {tmp}"))?;
        exec(host, &format!("ALTER TABLE {tmp} REMOVE PARTITIONING"), &[])?;
        exec(host, &format!("ALTER TABLE {tmp} DISCARD TABLESPACE"), &[])?;
        for ext in ["ibd", "cfg"] {
            let from = backup_dir.join(format!("{stem}#P#{p}.{ext}"));
            if from.exists() {
                move_in(&from, &live_dir.join(format!("{tmp_stem}.{ext}")), owner)?;
            }
        }
        exec(host, &format!("ALTER TABLE {tmp} IMPORT TABLESPACE"), &[])?;
        let _ = fs::remove_file(live_dir.join(format!("{tmp_stem}.cfg")));
        exec(
            host,
            &format!(
                "ALTER TABLE {q} EXCHANGE PARTITION {} WITH TABLE {tmp}",
                quote_ident(p)
            ),
            &[],
        )?;
        exec(host, &format!("DROP TABLE {tmp}"), &[])?;
    }
    Ok(())
}

/// Views may use other views: create in passes until none is left or no progress is made.
fn create_views(host: &Host<'_>, catalog: &Catalog) -> Result<(), String> {
    let mut pending: Vec<&TableDef> = catalog
        .tables
        .iter()
        .filter(|t| t.kind == Kind::View)
        .collect();
    while !pending.is_empty() {
        let mut failed = Vec::new();
        let mut last_error = String::new();
        for v in &pending {
            exec(host, &format!("USE {}", quote_ident(&v.schema)), &[])?;
            if let Err(e) = exec(host, &v.create, &[]) {
                last_error = format!("view {}.{}: {e}", v.schema, v.name);
                failed.push(*v);
            }
        }
        if failed.len() == pending.len() {
            return Err(format!(
                "cannot recreate {} view(s): {last_error}",
                failed.len()
            ));
        }
        pending = failed;
    }
    Ok(())
}

/// Recreate a trigger, routine or event in the session it was defined in.
fn create_object(host: &Host<'_>, o: &ObjectDef, what: &str) -> Result<(), String> {
    exec(host, &format!("USE {}", quote_ident(&o.schema)), &[])?;
    exec(host, "SET SESSION sql_mode=?", &[&o.sql_mode])?;
    if let Some(tz) = &o.time_zone {
        exec(host, "SET SESSION time_zone=?", &[tz])?;
    }
    exec(host, &o.create, &[])
        .map_err(|e| format!("cannot recreate {what} {}.{}: {e}", o.schema, o.name))
}

/// Phase 4, full: replace the datadir with the prepared backup while the service is down.
fn restore_full(
    host: &Host<'_>,
    job: &Job,
    backup: &Path,
    datadir: &Path,
    owner: &fs::Metadata,
) -> Result<(), String> {
    let service_settings = service::ServiceSettings::read(host).text()?;
    let stop = service_settings.stop().text()?;
    let start = service_settings.start().text()?;
    let timeout = service_settings.wait();
    let tool = backup_tool(host)?;
    let datadir = datadir
        .to_str()
        .map(|s| PathBuf::from(s.trim_end_matches('/')))
        .ok_or("the datadir path is not UTF-8")?;
    let parent = datadir.parent().ok_or("the datadir has no parent")?;
    let dir_name = datadir
        .file_name()
        .ok_or("the datadir has no name")?
        .to_string_lossy()
        .into_owned();
    let old = parent.join(format!("{dir_name}.dbjobs-old-{}", job.id));
    if old.exists() {
        return Err(format!(
            "{} exists (left by an earlier attempt?); move it away and retry",
            old.display()
        ));
    }
    // The staging directory may live inside the datadir (the default backup_dir): find the
    // backup there once the datadir has moved.
    let backup_moved = match backup.strip_prefix(&datadir) {
        Ok(rel) => old.join(rel),
        Err(_) => backup.to_path_buf(),
    };

    let queue = QueueTable::save(host)?;
    host.progress("stopping the server");
    stop.run()
        .map_err(|e| format!("stopping the server failed, nothing was changed: {e}"))?;
    host.info("server stopped");
    if let Err(e) = fs::rename(&datadir, &old) {
        let _ = start.run();
        return Err(format!(
            "cannot move the datadir {} aside: {e}; the server was restarted on it",
            datadir.display()
        ));
    }
    let attempt = (|| -> Result<(), String> {
        fs::create_dir(&datadir)
            .map_err(|e| format!("cannot create {}: {e}", datadir.display()))?;
        fs::set_permissions(&datadir, owner.permissions()).ok();
        // No host.progress while the server is down: writing the row would wait for it.
        host.info("moving the backup into place");
        let exit = ToolCommand::new(&tool, None)
            .arg("--no-defaults")
            .arg("--move-back")
            .arg(format!("--target-dir={}", backup_moved.display()))
            .arg(format!("--datadir={}", datadir.display()))
            .run()
            .text()?;
        if !exit.success() {
            return Err(format!("--move-back failed: {}", exit.failure()));
        }
        chown_tree(&datadir, owner)?;
        host.info("starting the server");
        start
            .run()
            .map_err(|e| format!("starting the server failed: {e}"))?;
        service::wait_until_answers(host, timeout).text()?;
        queue.put_back(host)
    })();
    match attempt {
        Ok(()) => {
            if let Err(e) = fs::remove_dir_all(&old) {
                host.warn(&format!(
                    "the server runs on the restored data, but the old datadir {} could not be removed: {e}",
                    old.display()
                ));
            }
            Ok(())
        }
        Err(e) => {
            host.warn(&format!(
                "full restore failed ({e}); putting the old datadir back"
            ));
            let _ = stop.run();
            let failed = parent.join(format!("{dir_name}.dbjobs-failed-{}", job.id));
            let _ = fs::remove_dir_all(&failed);
            let back = fs::rename(&datadir, &failed).and_then(|()| fs::rename(&old, &datadir));
            if let Err(b) = back {
                return Err(format!(
                    "{e}; AND putting the old datadir back failed: {b}. The old data is in {}: move it to {} by hand and start the server",
                    old.display(),
                    datadir.display()
                ));
            }
            let _ = fs::remove_dir_all(&failed);
            let restarted = start
                .run()
                .and_then(|_| service::wait_until_answers(host, timeout));
            Err(match restarted {
                Ok(_) => {
                    format!("{e}; the old datadir was put back and the server restarted on it")
                }
                Err(r) => format!(
                    "{e}; the old datadir was put back but the server did not come back: {r}"
                ),
            })
        }
    }
}

/// The node's job queue, carried over a full restore: the backup holds the source's queue
/// (or none), and the host must still find this job's row to write the outcome.
struct QueueTable {
    create: String,
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

impl QueueTable {
    const NAME: &'static str = "`replication_manager_schema`.`jobs`";

    fn save(host: &Host<'_>) -> Result<QueueTable, String> {
        let create = host
            .query(&format!("SHOW CREATE TABLE {}", Self::NAME), &[])
            .text()?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().nth(1).flatten())
            .ok_or("cannot read the definition of the job queue")?;
        let columns = host
            .query(&format!("SHOW COLUMNS FROM {}", Self::NAME), &[])
            .text()?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
        let rows = host
            .query(&format!("SELECT * FROM {}", Self::NAME), &[])
            .text()?;
        Ok(QueueTable {
            create,
            columns,
            rows,
        })
    }

    /// Replace whatever queue the backup brought with the saved one (not binlogged).
    fn put_back(&self, host: &Host<'_>) -> Result<(), String> {
        exec(
            host,
            "DROP DATABASE IF EXISTS `replication_manager_schema`",
            &[],
        )?;
        exec(host, "CREATE DATABASE `replication_manager_schema`", &[])?;
        exec(host, "USE `replication_manager_schema`", &[])?;
        exec(host, &self.create, &[])?;
        let cols: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        for row in &self.rows {
            let values: Vec<&str> = row.iter().flatten().map(String::as_str).collect();
            let marks: Vec<&str> = row
                .iter()
                .map(|v| if v.is_some() { "?" } else { "NULL" })
                .collect();
            exec(
                host,
                &format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    Self::NAME,
                    cols.join(","),
                    marks.join(",")
                ),
                &values,
            )?;
        }
        Ok(())
    }
}

/// Give a whole tree to the live server's user.
fn chown_tree(dir: &Path, owner: &fs::Metadata) -> Result<(), String> {
    std::os::unix::fs::lchown(dir, Some(owner.uid()), Some(owner.gid()))
        .map_err(|e| format!("cannot chown {}: {e}", dir.display()))?;
    for e in fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))? {
        let e = e.map_err(|e| e.to_string())?;
        let ft = e.file_type().map_err(|e| e.to_string())?;
        if ft.is_dir() {
            chown_tree(&e.path(), owner)?;
        } else {
            std::os::unix::fs::lchown(e.path(), Some(owner.uid()), Some(owner.gid()))
                .map_err(|err| format!("cannot chown {}: {err}", e.path().display()))?;
        }
    }
    Ok(())
}

/// Phase 5: every restored table opens and has the temporary server's row count.
fn verify(host: &Host<'_>, catalog: &Catalog) -> Result<(), String> {
    let mut wrong = Vec::new();
    for t in catalog.tables.iter().filter(|t| t.kind == Kind::Table) {
        let q = qualified(&t.schema, &t.name);
        let count = host
            .query_value(&format!("SELECT COUNT(*) FROM {q}"), &[])
            .map_err(|e| format!("restored table {q} does not open: {e}"))?
            .and_then(|v| v.parse::<u64>().ok());
        if count != t.rows {
            wrong.push(format!(
                "{q} has {} rows, the backup {}",
                count.map_or("?".into(), |c| c.to_string()),
                t.rows.map_or("?".into(), |c| c.to_string())
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the restore finished but {} table(s) differ from the backup: {}",
            wrong.len(),
            wrong.join(", ")
        ))
    }
}

/// Phase 6 (legacy and state variants): `gtid_slave_pos`, then `START SLAVE`.
fn apply_position(
    host: &Host<'_>,
    p: &Position,
    notes: &mut Vec<String>,
) -> Result<String, String> {
    if p.gtid.is_empty() {
        return Ok("the backup has no GTID; replication position not set".into());
    }
    let status = host.query("SHOW SLAVE STATUS", &[]).text()?;
    if !status.is_empty() {
        exec(host, "STOP SLAVE", &[])?;
    }
    exec(host, "SET GLOBAL gtid_slave_pos=?", &[&p.gtid]).map_err(|e| {
        format!(
            "the data was restored but gtid_slave_pos could not be set to {}: {e}; set it by hand (SET GLOBAL gtid_slave_pos='{}') and start the replica",
            p.gtid, p.gtid
        )
    })?;
    match host.query("START SLAVE", &[]) {
        Ok(_) => Ok(format!("gtid_slave_pos={}, replication started", p.gtid)),
        Err(e) => {
            host.warn(&format!("START SLAVE failed: {e}"));
            notes.push(format!("START SLAVE failed: {e}"));
            Ok(format!(
                "gtid_slave_pos={} (replication not started: no master configured?)",
                p.gtid
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_from_either_file() {
        let dir = std::env::temp_dir().join(format!("dbjobs-pos-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        assert_eq!(read_position(&dir).unwrap(), None);
        fs::write(
            dir.join("xtrabackup_info"),
            "tool_name = mariadb-backup\nbinlog_pos = filename 'mariadb-bin.000001', position '202805504', GTID of the last change '0-1-16'\n",
        )
        .unwrap();
        let p = read_position(&dir).unwrap().unwrap();
        assert_eq!(p.file, "mariadb-bin.000001");
        assert_eq!(p.pos, "202805504");
        assert_eq!(p.gtid, "0-1-16");
        assert_eq!(
            p.payload(),
            r#"{"binLogFile":"mariadb-bin.000001","binLogPos":"202805504","gtid":"0-1-16","vendor":"mariadb"}"#
        );
        fs::write(
            dir.join("xtrabackup_binlog_info"),
            "mariadb-bin.000002\t2716\t0-1-12,1-2-3\n",
        )
        .unwrap();
        let p = read_position(&dir).unwrap().unwrap();
        assert_eq!(
            (p.file.as_str(), p.gtid.as_str()),
            ("mariadb-bin.000002", "0-1-12,1-2-3")
        );
        fs::write(dir.join("xtrabackup_binlog_info"), "f\t1\t0-1-1'; DROP\n").unwrap();
        assert!(read_position(&dir).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn batch_output_is_unescaped() {
        let rows = parse_batch(b"t1\tCREATE TABLE `t1` (\\n  `a` int\\n)\nx\ta\\\\b\\tc\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][1], "CREATE TABLE `t1` (\n  `a` int\n)");
        assert_eq!(rows[1][1], "a\\b\tc");
    }

    #[test]
    fn table_files_include_partitions_only() {
        let dir = std::env::temp_dir().join(format!("dbjobs-tf-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        for f in ["t.ibd", "t.cfg", "t#P#p0.ibd", "t2.ibd", "t.frm", "m.MYD"] {
            fs::write(dir.join(f), b"").unwrap();
        }
        let names: Vec<String> = table_files(&dir, "t", &["ibd", "cfg"])
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["t#P#p0.ibd", "t.cfg", "t.ibd"]);
        assert_eq!(table_files(&dir, "m", &["MYD", "MYI"]).len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
