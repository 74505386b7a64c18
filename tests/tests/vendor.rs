//! Vendors: plugins built out of tree, each with its own `cargo build`, loaded into the real
//! host next to the in-tree plugins; and the recovery entry point a plugin gets at start-up.
//!
//! The out-of-tree crates (`sdk/example-out-of-tree`, a vendor's plugin against the current
//! SDK; `tests/fixtures/sdk-0.2.0-plugin` and `tests/fixtures/sdk-0.1.0-plugin`, built against
//! frozen copies of older SDKs) are built here, once per test binary, into one target
//! directory of their own under the workspace's (`target/out-of-tree`), so abi_stable compiles
//! once for all of them and later runs are incremental. It cannot be the workspace's own
//! target directory: the running `cargo test` holds its lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dbjobs_tests::repman_standin::RepmanStandin;
use dbjobs_tests::sender::{create_jobs_table, job_row};
use dbjobs_tests::*;

/// The out-of-tree crates: folder under the workspace, library file it builds.
const OUT_OF_TREE: [(&str, &str); 3] = [
    ("sdk/example-out-of-tree", "libuptime_check.so"),
    (
        "tests/fixtures/sdk-0.2.0-plugin",
        "libdbjobs_fixture_sdk020.so",
    ),
    (
        "tests/fixtures/sdk-0.1.0-plugin",
        "libdbjobs_fixture_sdk010.so",
    ),
];

/// The workspace root (the parent of this crate).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Build every out-of-tree crate (once per test binary) and return library name -> path, or
/// what failed.
fn out_of_tree_builds() -> &'static Result<BTreeMap<&'static str, PathBuf>, String> {
    static BUILT: OnceLock<Result<BTreeMap<&'static str, PathBuf>, String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = out_of_tree_target();
        let start = Instant::now();
        let mut built = BTreeMap::new();
        for (dir, lib) in OUT_OF_TREE {
            built.insert(lib, cargo_build(&workspace().join(dir), &target)?.join(lib));
        }
        eprintln!(
            "built {} out-of-tree crates into {} in {:.1} s",
            OUT_OF_TREE.len(),
            target.display(),
            start.elapsed().as_secs_f64()
        );
        Ok(built)
    })
}

/// The target directory of the out-of-tree builds, `target/out-of-tree`.
fn out_of_tree_target() -> PathBuf {
    target_dir()
        .parent()
        .expect("the profile directory is inside the target directory")
        .join("out-of-tree")
}

/// `cargo build --locked` of the crate in `dir` into `target`; the profile directory with its
/// libraries.
fn cargo_build(dir: &Path, target: &Path) -> Result<PathBuf, String> {
    cargo("build", dir, target)?;
    Ok(target.join("debug"))
}

/// `cargo COMMAND --locked` of the crate in `dir` into `target`, its output when it fails.
fn cargo(command: &str, dir: &Path, target: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args([command, "--locked", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        .output()
        .map_err(|e| format!("cannot run {cargo:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .rev()
        .take(40)
        .collect();
    Err(format!(
        "`cargo {command} --locked` of {} failed ({}); its Cargo.lock must match its Cargo.toml \
         and the crates must be in the local registry cache (a workspace build fetches them):\n{}",
        dir.display(),
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}

/// The library `lib` an out-of-tree crate built; a failed build fails the test with cargo's
/// output.
fn out_of_tree(lib: &str) -> PathBuf {
    match out_of_tree_builds() {
        Ok(built) => built[lib].clone(),
        Err(e) => panic!("{e}"),
    }
}

/// `dbjobs plugins --json`: plugin name -> its JSON, refused file name -> reason.
fn plugins_json(
    dbjobs: &Dbjobs,
) -> (
    BTreeMap<String, serde_json::Value>,
    BTreeMap<String, String>,
) {
    let out = dbjobs.run(&["plugins", "--json"]);
    out.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let loaded = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p.clone()))
        .collect();
    let refused = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let file = PathBuf::from(r["file"].as_str().unwrap());
            (
                file.file_name().unwrap().to_string_lossy().into_owned(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (loaded, refused)
}

/// `dbjobs submit TASK [args]`: the new job's id.
fn submit(dbjobs: &Dbjobs, task: &str, args: &[&str]) -> u64 {
    let mut a = vec!["submit", task];
    a.extend_from_slice(args);
    let out = dbjobs.run(&a);
    out.assert_code(0);
    out.stdout.trim().parse().expect("submit prints the id")
}

#[test]
fn out_of_tree_plugins_load_next_to_the_in_tree_ones_and_their_jobs_run() {
    let server = MariaDb::start();
    let dir = plugin_dir(&[
        plugin_file("example"),
        fixture_file("dbjobs_fixture_recover"),
        out_of_tree("libuptime_check.so"),
        out_of_tree("libdbjobs_fixture_sdk020.so"),
        out_of_tree("libdbjobs_fixture_sdk010.so"),
    ]);
    let dbjobs = Dbjobs::new(&server, dir.path());

    let (loaded, refused) = plugins_json(&dbjobs);
    let sdk = |name: &str| loaded[name]["sdk_version"].as_str().unwrap().to_string();
    assert_eq!(
        loaded.keys().map(String::as_str).collect::<Vec<_>>(),
        ["example", "journaled", "sdk020", "uptime-check"],
        "{refused:?}"
    );
    assert_eq!(sdk("uptime-check"), dbjobs_sdk::SDK_VERSION);
    assert_eq!(
        sdk("sdk020"),
        "0.2.0",
        "the 0.2.0 plugin loads into this host"
    );
    let old = &refused["libdbjobs_fixture_sdk010.so"];
    assert!(
        old.contains("built against dbjobs-sdk 0.1.0")
            && old.contains(&format!(
                "this dbjobs host uses dbjobs-sdk {}",
                dbjobs_sdk::SDK_VERSION
            ))
            && old.contains("rebuild the plugin against dbjobs-sdk 0.2.x"),
        "{old}"
    );
    assert_eq!(refused.len(), 1, "{refused:?}");

    // The payload variant, so the vendor plugin's JSON payload is stored too.
    create_jobs_table(&server, "payload");
    let uptime = submit(&dbjobs, "uptime_check", &[]);
    let old_sdk = submit(
        &dbjobs,
        "sdk020",
        &["--server", "10.0.0.5", "--job-port", "4444"],
    );
    let example = submit(&dbjobs, "example", &[]);
    dbjobs.run(&["run"]).assert_code(0);

    let version = server.query_value("SELECT VERSION()").unwrap();
    let row = job_row(&server, uptime);
    assert!(row.succeeded(), "{row:?}");
    assert!(
        row.result_text().starts_with(&format!("{version} up "))
            && row.result_text().ends_with(", writable"),
        "{row:?}"
    );
    let payload: serde_json::Value = serde_json::from_str(row.payload.as_deref().unwrap()).unwrap();
    assert_eq!(payload["version"], version.as_str());
    assert_eq!(payload["read_only"], false);
    assert!(payload["uptime_seconds"].as_u64().is_some(), "{payload}");

    let row = job_row(&server, old_sdk);
    assert!(row.succeeded(), "{row:?}");
    assert_eq!(
        row.result_text(),
        format!(
            "sdk 0.2.0 plugin ran job {old_sdk} of task sdk020 (variant payload, server 10.0.0.5, port 4444, query 42)"
        )
    );
    assert_eq!(
        job_row(&server, example).result_text(),
        format!("example job {example} done")
    );

    // The vendor plugin's declared setting reaches it, and its error is written like any other.
    let strict = submit(&dbjobs, "uptime_check", &[]);
    let out = dbjobs
        .clone()
        .set("uptime_check_min_seconds", "100000000")
        .run(&["run"]);
    out.assert_code(1);
    let row = job_row(&server, strict);
    assert!(row.finished() && !row.succeeded(), "{row:?}");
    assert!(
        row.result_text()
            .starts_with("failed, server untouched: the server has been up for ")
            && row.result_text().contains(
                "less than uptime_check_min_seconds=100000000 - hint: look for why it restarted"
            ),
        "{row:?}"
    );
}

#[test]
fn the_vendor_example_passes_its_own_tests() {
    if let Err(e) = cargo(
        "test",
        &workspace().join("sdk/example-out-of-tree"),
        &out_of_tree_target(),
    ) {
        panic!("{e}");
    }
}

/// `<state_dir>/journaled/<id>.journal`, the recover fixture's journal of job `id`.
fn journal(server: &MariaDb, id: u64) -> PathBuf {
    server
        .state_dir()
        .join("journaled")
        .join(format!("{id}.journal"))
}

/// Whether the recover fixture's shadow table of job `id` exists.
fn shadow_exists(server: &MariaDb, id: u64) -> bool {
    server
        .query_value(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA='dbjobs_fixture_journaled' AND TABLE_NAME='shadow_{id}'"
        ))
        .as_deref()
        == Some("1")
}

/// Start a `journaled` job (it waits up to 120 s), wait until it journaled its shadow table,
/// and return the running dbjobs with the job's id.
fn journaled_job_running(server: &MariaDb, dbjobs: &Dbjobs) -> (std::process::Child, u64) {
    let id = submit(dbjobs, "journaled", &["--job-port", "120"]);
    let child = dbjobs.spawn(&["run"]);
    wait_for(
        "the journaled job's shadow table",
        Duration::from_secs(60),
        || (journal(server, id).exists() && shadow_exists(server, id)).then_some(()),
    );
    (child, id)
}

/// kill -9 of a running dbjobs: what a crash, the OOM killer or a power cut leaves.
fn kill_9(mut child: std::process::Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_dead_runs_leftovers_are_rolled_back_by_its_plugins_recover_and_its_row_says_so() {
    let server = MariaDb::start();
    let dir = plugin_dir(&[
        plugin_file("example"),
        fixture_file("dbjobs_fixture_recover"),
        // A 0.2.0 plugin has no recover: the host must skip it without complaint.
        out_of_tree("libdbjobs_fixture_sdk020.so"),
    ]);
    let dbjobs = Dbjobs::new(&server, dir.path());
    dbjobs.run(&["init"]).assert_code(0);
    let (running, id) = journaled_job_running(&server, &dbjobs);

    // A second run while the job is alive: its recovery leaves the live journal alone.
    let out = dbjobs.run(&["run"]);
    out.assert_code(0);
    assert!(
        out.stderr.contains(&format!(
            "recovery (plugin journaled): job {id} is alive (its journal is locked); left alone"
        )),
        "{}",
        out.stderr
    );
    assert!(shadow_exists(&server, id) && journal(&server, id).exists());
    kill_9(running);
    assert!(
        shadow_exists(&server, id),
        "the dead run left its shadow table"
    );

    let next = submit(&dbjobs, "example", &[]);
    let out = dbjobs.run(&["run"]);
    out.assert_code(0);
    let row = job_row(&server, id);
    assert_eq!(row.done, 1, "{row:?}");
    assert_eq!(
        row.result_text(),
        format!(
            "failed, server rolled back: killed while its shadow table existed; recovery dropped \
             dbjobs_fixture_journaled.shadow_{id} - hint: submit the job again"
        )
    );
    assert!(
        !shadow_exists(&server, id),
        "the recovery dropped the shadow table"
    );
    assert!(
        !journal(&server, id).exists(),
        "the recovery removed the journal"
    );
    assert_eq!(
        job_row(&server, next).result_text(),
        format!("example job {next} done")
    );
    for line in [
        format!(
            "recovery (plugin journaled): job {id}: dropped dbjobs_fixture_journaled.shadow_{id}"
        ),
        format!("recovery: job {id} (journaled) marked failed with the outcome of its recovery"),
    ] {
        assert!(
            out.stderr.contains(&line),
            "{line:?} not in\n{}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("abandoned"), "{}", out.stderr);
    assert!(!out.stderr.contains("ERROR"), "{}", out.stderr);
}

#[test]
fn a_recovery_that_leaves_the_server_partial_marks_the_node() {
    let server = MariaDb::start();
    let dir = plugin_dir(&[fixture_file("dbjobs_fixture_recover")]);
    let dbjobs = Dbjobs::new(&server, dir.path());
    dbjobs.run(&["init"]).assert_code(0);
    let (running, id) = journaled_job_running(&server, &dbjobs);
    kill_9(running);

    let out = dbjobs
        .clone()
        .set("journaled_recover", "partial")
        .run(&["run"]);
    out.assert_code(0);
    let row = job_row(&server, id);
    assert_eq!(
        row.result_text(),
        format!("failed, server left partial: killed; dbjobs_fixture_journaled.shadow_{id} could not be dropped")
    );
    assert!(
        out.stderr
            .contains(&format!("job {id} (journaled) left the node partial")),
        "{}",
        out.stderr
    );
    let mark = std::fs::read_to_string(server.state_dir().join("partial.json")).unwrap();
    assert!(mark.contains(&format!("\"job_id\":{id}")), "{mark}");
    let out = dbjobs.run(&["jobs", "--json"]);
    out.assert_code(0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    let listed = rows
        .iter()
        .find(|r| r["id"] == id)
        .expect("the job is listed");
    assert_eq!(
        (&listed["kind"], &listed["server_state"]),
        (&"internal".into(), &"partial".into())
    );
}

#[test]
fn in_api_mode_the_recovery_runs_too_and_the_dead_job_is_reported_error() {
    let server = MariaDb::start();
    let rm = RepmanStandin::start("vendor", &format!("127.0.0.1:{}", server.port()), "secret");
    let dir = plugin_dir(&[fixture_file("dbjobs_fixture_recover")]);
    let mut settings = rm.settings();
    settings.push(("jobs_mode".into(), "api".into()));
    settings.push(("journaled_wait".into(), "120".into()));
    let pairs: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let dbjobs = Dbjobs::new(&server, dir.path()).defaults_file(&server.defaults_file_with(&pairs));
    rm.need("journaled");
    let running = dbjobs.spawn(&["run"]);
    let journal = wait_for("the API job's journal", Duration::from_secs(60), || {
        std::fs::read_dir(server.state_dir().join("journaled"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "journal"))
    });
    let id: u64 = journal
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    wait_for("its shadow table", Duration::from_secs(60), || {
        shadow_exists(&server, id).then_some(())
    });
    kill_9(running);

    let out = dbjobs.run(&["run"]);
    out.assert_code(0);
    assert!(
        !shadow_exists(&server, id) && !journal.exists(),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "recovery: job {id}'s outcome stays in this log (API mode reports the dead run's owed error): \
             failed, server rolled back: killed while its shadow table existed"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        rm.states_of("journaled"),
        ["processing", "error"],
        "{}",
        out.stderr
    );
}

#[test]
fn a_failed_recovery_is_an_error_line_and_the_jobs_still_run() {
    let server = MariaDb::start();
    let dir = plugin_dir(&[
        plugin_file("example"),
        fixture_file("dbjobs_fixture_recover"),
    ]);
    let dbjobs = Dbjobs::new(&server, dir.path());
    dbjobs.run(&["init"]).assert_code(0);
    let (running, id) = journaled_job_running(&server, &dbjobs);
    kill_9(running);

    for (mode, says) in [
        ("fail", "the fixture was asked to fail its recovery"),
        (
            "panic",
            "plugin panicked while recovering: the fixture was asked to panic",
        ),
    ] {
        let next = submit(&dbjobs, "example", &[]);
        let out = dbjobs.clone().set("journaled_recover", mode).run(&["run"]);
        out.assert_code(0);
        assert_eq!(
            job_row(&server, next).result_text(),
            format!("example job {next} done")
        );
        let error = out
            .stderr
            .lines()
            .find(|l| l.contains("ERROR") && l.contains("recovery (plugin journaled) failed"))
            .unwrap_or_else(|| {
                panic!("no error line for a recovery that {mode}s:\n{}", out.stderr)
            });
        assert!(error.contains(says), "{error}");
        assert!(journal(&server, id).exists() && shadow_exists(&server, id));
    }
    // The pass failed the row as abandoned meanwhile; a recovery that works later still
    // cleans up, and leaves the finished row as it is.
    let abandoned = job_row(&server, id);
    assert!(
        abandoned.result_text().contains("abandoned"),
        "{abandoned:?}"
    );
    let out = dbjobs.run(&["run"]);
    out.assert_code(0);
    assert!(!shadow_exists(&server, id) && !journal(&server, id).exists());
    assert!(
        out.stderr
            .contains(&format!("recovery: job {id} is finished already or gone")),
        "{}",
        out.stderr
    );
    assert_eq!(job_row(&server, id), abandoned);
}
