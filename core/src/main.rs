//! The `dbjobs` command: a thin CLI over the `dbjobs` library.
//!
//! Exit status: 0 when every job succeeded or none was pending, 1 when a job failed, 2 on a
//! configuration or connection error (with a message that says what to do): an unreadable or
//! ambiguous option file, an unknown setting name, a value of the wrong type, no plugin, no
//! server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use dbjobs::config::{ConnectionFlags, ConnectionOptions, OptionFile, Settings};
use dbjobs::env::HostEnv;
use dbjobs::layout_cache::LayoutCache;
use dbjobs::loader::{Registry, DEFAULT_PLUGIN_DIR};
use dbjobs::node_state::{self, PartialMark};
use dbjobs::outcomes::{self, OutcomeStore};
use dbjobs::queue::Queue;
use dbjobs::setting_catalog::SettingCatalog;
use dbjobs::settings::JobsMode;
use dbjobs::source::api::ApiSource;
use dbjobs::source::table::TableSource;
use dbjobs::{doctor, manual, recovery, runner, settings_doc, Error};

/// Runs replication-manager's node jobs (backups, log shipping, reseeds, ...) through plugins.
#[derive(Parser, Debug)]
#[command(name = "dbjobs", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options accepted before or after the subcommand.
#[derive(Args, Debug)]
struct GlobalArgs {
    /// MySQL option file: credentials in [client], job settings in [dbjobs]. The password is
    /// only read from here or from MYSQL_PWD, never from a flag.
    #[arg(long, global = true, value_name = "FILE")]
    defaults_file: Option<PathBuf>,
    /// Unix socket of the local server (default /run/mysqld/mysqld.sock).
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Connect over TCP to this host instead of the socket.
    #[arg(long, global = true)]
    host: Option<String>,
    /// TCP port of the server (with --host).
    #[arg(long, global = true)]
    port: Option<u16>,
    /// User to connect as.
    #[arg(long, global = true)]
    user: Option<String>,
    /// Another directory of plugin libraries (repeatable); /usr/lib/dbjobs/plugins is always read.
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// Override a [dbjobs] setting (repeatable), e.g. --set example_log=/tmp/x.log.
    #[arg(long = "set", global = true, value_name = "NAME=VALUE")]
    sets: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One pass over all tasks: run the newest pending job of each, different tasks at the same
    /// time (at most max_parallel_jobs), and exit when they ended (the cron mode).
    Run,
    /// Poll for jobs until SIGTERM, jobs of different tasks at the same time (at most
    /// max_parallel_jobs); on SIGTERM the running jobs finish first, a second signal cancels them.
    Daemon {
        /// Pause between polls, e.g. 1s, 500ms, 2m.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
    },
    /// List the loaded plugins and the refused files.
    Plugins {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show the most recent rows of the job table.
    Jobs {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// How many rows.
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// Insert a job the way replication-manager does (for operators and tests).
    Submit {
        /// The task name, e.g. mariabackup.
        task: String,
        /// The address replication-manager would put in `server`.
        #[arg(long)]
        server: Option<String>,
        /// The `port` column.
        #[arg(long = "job-port", default_value_t = 0, allow_negative_numbers = true)]
        job_port: i64,
    },
    /// Create replication_manager_schema.jobs if it is missing, and print its layout.
    Init,
    /// Every setting dbjobs and the loaded plugins declare: name, type, default, doc, and who
    /// declares it (`--format cnf`: an annotated option file).
    Settings {
        /// Output form.
        #[arg(long, value_enum, default_value = "text")]
        format: settings_doc::Format,
    },
    /// Remove the mark of a node left partial by a failed job, after checking its data:
    /// restores are refused while it exists.
    ClearPartial,
    /// Check that this node is ready for replication-manager's jobs: one line per check (ok,
    /// warn, fail with what to do); exit 1 when one fails. Runs no job and changes nothing.
    Doctor {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Write the man pages or the shell completions into DIR (for the package build); the
    /// man page documents the settings of the plugins in --plugin-dir.
    #[command(hide = true)]
    Generate {
        /// What to write.
        #[arg(value_enum)]
        what: Generated,
        /// The directory to write into.
        dir: PathBuf,
    },
}

/// What `dbjobs generate` writes.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Generated {
    /// dbjobs.1 and a page per subcommand.
    Man,
    /// bash, zsh and fish completions.
    Completions,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 1s or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Why the command stopped.
enum Failure {
    /// A job failed, or a doctor check (exit 1).
    Jobs,
    /// Configuration or connection (exit 2).
    Setup(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Setup(e)
    }
}

fn main() -> ExitCode {
    let env = env_logger::Env::default().default_filter_or("info");
    env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Jobs) => ExitCode::from(1),
        Err(Failure::Setup(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let g = &cli.global;
    let file = match &g.defaults_file {
        Some(p) => OptionFile::read(p)?,
        None => OptionFile::default(),
    };
    let flags = ConnectionFlags {
        socket: g.socket.clone(),
        host: g.host.clone(),
        port: g.port,
        user: g.user.clone(),
    };
    let connection = ConnectionOptions::resolve(&flags, &file)?;
    let settings = Settings::resolve(&file, &g.sets)?;
    let mut dirs = vec![PathBuf::from(DEFAULT_PLUGIN_DIR)];
    dirs.extend(g.plugin_dirs.iter().cloned());

    match cli.command {
        Command::Doctor { json } => {
            let report = doctor::run(&doctor::Inputs {
                connection: &connection,
                settings: &settings,
                plugin_dirs: &dirs,
            });
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report.to_json()).expect("JSON of strings")
                );
            } else {
                print!("{}", report.to_text());
            }
            if report.failed() {
                return Err(Failure::Jobs);
            }
            Ok(())
        }
        Command::Generate { what, dir } => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?;
            let written = match what {
                Generated::Man => {
                    manual::write_man_pages(Cli::command(), &Registry::load(&g.plugin_dirs), &dir)?
                }
                Generated::Completions => manual::write_completions(Cli::command(), &dir)?,
            };
            for file in written {
                println!("{}", file.display());
            }
            Ok(())
        }
        Command::Plugins { json } => {
            let registry = Registry::load(&dirs);
            print_plugins(&registry, json);
            Ok(())
        }
        Command::Init => {
            let q = Queue::open(&connection)?;
            println!(
                "replication_manager_schema.jobs is ready ({} layout)",
                q.layout().variant.as_str()
            );
            Ok(())
        }
        Command::Submit {
            task,
            server,
            job_port,
        } => {
            let mut q = Queue::open(&connection)?;
            let id = q.submit(&task, server.as_deref(), job_port)?;
            println!("{id}");
            Ok(())
        }
        Command::Jobs { json, limit } => {
            let state_dir = settings.host()?.state_dir;
            let mut q = Queue::open(&connection)?;
            let mut rows = q.recent(limit)?;
            outcomes::annotate(&mut rows, &OutcomeStore::new(&state_dir).load()?);
            if !json {
                print_partial_mark(node_state::read(&state_dir));
            }
            print_jobs(&rows, json);
            Ok(())
        }
        Command::Settings { format } => {
            let registry = Registry::load(&dirs);
            print!(
                "{}",
                settings_doc::render(&SettingCatalog::of(&registry), format)
            );
            Ok(())
        }
        Command::ClearPartial => {
            let state_dir = settings.host()?.state_dir;
            match node_state::clear(&state_dir)? {
                None => println!(
                    "no partial mark in {}; nothing to clear",
                    state_dir.display()
                ),
                Some(Ok(mark)) => println!(
                    "removed the partial mark of {}; restores run again",
                    mark.describe()
                ),
                Some(Err(e)) => {
                    println!("removed an unreadable partial mark ({e}); restores run again")
                }
            }
            Ok(())
        }
        Command::Run => {
            let env = HostEnv::new(settings, connection)?;
            install_signal_handlers(&env)?;
            let failed = match env.host.jobs_mode {
                JobsMode::Sql => {
                    let (registry, queue) = load_and_connect(&dirs, &env)?;
                    let source = TableSource::new(queue, &env.connection);
                    let reports = runner::run_pass(&source, &registry, &env)?;
                    reports.iter().filter(|r| !r.ok).count()
                }
                JobsMode::Api => {
                    // No database connection: API jobs run while the server is down (start).
                    let registry = load_and_recover(&dirs, &env)?;
                    let source = ApiSource::open(&env)?;
                    let reports = runner::run_pass(&source, &registry, &env)?;
                    reports.iter().filter(|r| !r.ok).count() + source.errors()
                }
            };
            if failed > 0 {
                return Err(Failure::Jobs);
            }
            Ok(())
        }
        Command::Daemon { interval } => {
            let env = HostEnv::new(settings, connection)?;
            install_signal_handlers(&env)?;
            let failed = match env.host.jobs_mode {
                JobsMode::Sql => {
                    // Fail fast on a wrong configuration; later connection losses are retried.
                    let (registry, queue) = load_and_connect(&dirs, &env)?;
                    log_daemon_start(&registry, interval);
                    let source = TableSource::new(queue, &env.connection);
                    runner::run_daemon(&source, &registry, &env, interval)?
                }
                JobsMode::Api => {
                    let registry = load_and_recover(&dirs, &env)?;
                    let source = ApiSource::open(&env)?;
                    log_daemon_start(&registry, interval);
                    runner::run_daemon(&source, &registry, &env, interval)? + source.errors()
                }
            };
            if failed > 0 {
                return Err(Failure::Jobs);
            }
            Ok(())
        }
    }
}

fn log_daemon_start(registry: &Registry, interval: Duration) {
    log::info!(
        "daemon started: {} task(s), a pass every {} ms",
        registry.task_names().count(),
        interval.as_millis()
    );
}

/// SQL mode: load the plugins and check the settings while the queue session connects (the
/// start-up cost of a cron pass, and neither needs the other), let the plugins recover what
/// dead runs left, then record the outcomes of the dead jobs: all before the first pass
/// claims anything.
fn load_and_connect(dirs: &[PathBuf], env: &HostEnv) -> Result<(Registry, Queue), Failure> {
    let (registry, recovered, queue) = std::thread::scope(|scope| {
        let queue = scope.spawn(|| Queue::open(&env.connection));
        let registry = loaded_registry(dirs, load_remembering_checks(dirs, env), env);
        let recovered = match &registry {
            Ok(registry) => recovery::recover_plugins(registry, env),
            Err(_) => Vec::new(),
        };
        (registry, recovered, queue.join())
    });
    let registry = registry?;
    let queue = queue.map_err(|_| Error::new("connecting to the server panicked"))?;
    // A recovery may have stopped, restarted or brought back the server (a full restore
    // killed while it was replacing the datadir): the session opened meanwhile may be
    // broken or missing, so one is opened afresh for the outcomes.
    let mut queue = match queue {
        _ if !recovered.is_empty() => Queue::open(&env.connection),
        queue => queue,
    }
    .inspect_err(|e| recovery::record_in_table_failed(env, &recovered, e))?;
    recovery::record_in_table(&mut queue, &registry, env, &recovered);
    Ok((registry, queue))
}

/// API mode: load the plugins, check the settings and let the plugins recover what dead
/// runs left before the first pass. replication-manager learns that a dead run's job failed
/// from the report that run owed (`source::api`); the recovery's own outcome is logged.
fn load_and_recover(dirs: &[PathBuf], env: &HostEnv) -> Result<Registry, Failure> {
    let registry = loaded_registry(dirs, load_remembering_checks(dirs, env), env)?;
    recovery::log_unreported(env, &recovery::recover_plugins(&registry, env));
    Ok(registry)
}

/// `run` and `daemon`: load the plugins, skipping the layout check of the files that passed
/// it before unchanged, and remember this pass's files ([`dbjobs::layout_cache`]).
fn load_remembering_checks(dirs: &[PathBuf], env: &HostEnv) -> Registry {
    let cache = LayoutCache::in_state_dir(&env.host.state_dir);
    let registry = Registry::load_with(dirs, &cache);
    cache.save();
    registry
}

/// Having no plugin is a configuration error (a pass would do nothing forever), and so is a
/// setting that no one declares or whose value does not fit its declaration.
fn loaded_registry(
    dirs: &[PathBuf],
    registry: Registry,
    env: &HostEnv,
) -> Result<Registry, Failure> {
    if registry.plugins.is_empty() {
        return Err(Failure::Setup(
            Error::new(format!(
                "no plugin loaded from {}",
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            ))
            .help(format!(
                "install plugins into {DEFAULT_PLUGIN_DIR} or pass --plugin-dir; `dbjobs plugins` shows why files were refused"
            )),
        ));
    }
    for warning in SettingCatalog::of(&registry).check(&env.settings, &registry.refused)? {
        log::warn!("{warning}");
    }
    Ok(registry)
}

/// SIGTERM/SIGINT: the first asks to stop after the running job, the second cancels it.
fn install_signal_handlers(env: &HostEnv) -> Result<(), Failure> {
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let counter = env.signals.clone();
        // SAFETY: the handler only increments an atomic, which is async-signal-safe.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
        }
        .map_err(|e| Failure::Setup(Error::new(format!("cannot install signal handlers: {e}"))))?;
    }
    Ok(())
}

fn print_plugins(registry: &Registry, json: bool) {
    if json {
        let plugins: Vec<serde_json::Value> = registry
            .plugins
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "version": p.version,
                    "sdk_version": p.sdk_version,
                    "description": p.description,
                    "file": p.file.display().to_string(),
                    "tasks": p.tasks.iter().map(|t| serde_json::json!({
                        "name": t.name,
                        "direction": t.direction.as_str(),
                        "description": t.description,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let refused: Vec<serde_json::Value> = registry
            .refused
            .iter()
            .map(|r| serde_json::json!({"file": r.file.display().to_string(), "reason": r.reason}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"plugins": plugins, "refused": refused})
            )
            .expect("JSON of strings")
        );
        return;
    }
    for p in &registry.plugins {
        println!(
            "{} {} ({})  {}",
            p.name,
            p.version,
            p.file.display(),
            p.description
        );
        for t in &p.tasks {
            println!(
                "    {:<22} {:<9} {}",
                t.name,
                t.direction.as_str(),
                t.description
            );
        }
    }
    for r in &registry.refused {
        println!("refused {}: {}", r.file.display(), r.reason);
    }
}

/// The partial mark above the job list: the one thing an operator must see first.
fn print_partial_mark(mark: dbjobs::Result<Option<PartialMark>>) {
    match mark {
        Ok(None) => {}
        Ok(Some(mark)) => println!(
            "NODE LEFT PARTIAL by {}\n  restores are refused: check the data, then run dbjobs clear-partial\n",
            mark.describe()
        ),
        Err(e) => println!("NODE LEFT PARTIAL (the mark cannot be read: {e})\n"),
    }
}

fn print_jobs(rows: &[serde_json::Map<String, serde_json::Value>], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(rows).expect("JSON of strings")
        );
        return;
    }
    let text = |row: &serde_json::Map<String, serde_json::Value>, k: &str| match row.get(k) {
        None | Some(serde_json::Value::Null) => "-".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let has_state = rows.first().is_some_and(|r| r.contains_key("state"));
    println!(
        "{:>6}  {:<20} {:<22} {:>4} {}{:<19}  {:<19}  result",
        "id",
        "task",
        "server:port",
        "done",
        if has_state { "state " } else { "" },
        "start",
        "end"
    );
    for row in rows {
        println!(
            "{:>6}  {:<20} {:<22} {:>4} {}{:<19}  {:<19}  {}",
            text(row, "id"),
            text(row, "task"),
            format!("{}:{}", text(row, "server"), text(row, "port")),
            text(row, "done"),
            if has_state {
                format!("{:>5} ", text(row, "state"))
            } else {
                String::new()
            },
            text(row, "start"),
            text(row, "end"),
            text(row, "result").replace('\n', " "),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        let a = Cli::try_parse_from(["dbjobs", "--socket", "/s", "run", "--set", "a=b"]).unwrap();
        let b = Cli::try_parse_from(["dbjobs", "run", "--socket", "/s", "--set", "a=b"]).unwrap();
        assert_eq!(a.global.socket, b.global.socket);
        assert_eq!(a.global.sets, b.global.sets);
    }

    #[test]
    fn there_is_no_password_flag() {
        assert!(Cli::try_parse_from(["dbjobs", "--password", "x", "run"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("1x").is_err());
    }
}
