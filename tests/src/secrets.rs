//! The suite-wide secret scan (issue 21: "a grep of all logs and events produced by the suite
//! finds no token or password"), the tests' side of it.
//!
//! When `DROVER_TEST_LOGS` names a directory (`scripts/test.sh` sets a fresh one per run),
//! - every `drover` process the harness runs leaves its stdout and stderr there when it ends
//!   (`procs/<test binary>/<test>/<role>-…/`), and a `drover up` also its embedded broker's log
//!   and, while they are small (32 MiB each, 256 MiB a run), the broker's record store
//!   (`tansu.db*`: every record of `drover.events.v1`, logs and metrics, uncompressed), see
//!   [`keep_process`];
//! - a test that reads events may keep them too ([`keep`]);
//! - every secret a test makes or hands to Drover (tokens from `drover token create`, the
//!   cluster token, a Slack URL, a SASL password) is registered by name with [`note`], in
//!   `secrets.txt` (`NAME<TAB>SECRET` per line).
//!
//! After the tests, `scripts/secret-scan.sh` looks for every registered secret in every kept
//! file and fails the suite naming the file and the secret's name (never the secret).
//! Unset, nothing is kept or noted and the tests behave as before.
//!
//! Not kept, on purpose: the stdout of `drover token create|generate`, whose whole point is to
//! print the new token once (its stderr is kept).
use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

/// The environment variable naming the directory of kept logs.
pub const ENV: &str = "DROVER_TEST_LOGS";

/// The secrets file in the kept directory.
pub const SECRETS_FILE: &str = "secrets.txt";

/// A broker store bigger than this is not copied (a note says so instead).
const MAX_STORE_BYTES: u64 = 32 << 20;

/// Nor is one once the run's kept files reach this: the scan must not cost gigabytes.
const MAX_KEPT_BYTES: u64 = 256 << 20;

/// The kept directory of this run, created if needed; `None` when `DROVER_TEST_LOGS` is unset
/// or empty.
pub fn dir() -> Option<PathBuf> {
    let d = std::env::var_os(ENV).filter(|v| !v.is_empty())?;
    let d = PathBuf::from(d);
    std::fs::create_dir_all(&d).ok()?;
    Some(d)
}

/// Registers `secret` under `name` (what the scan reports), when logs are kept. Secrets
/// shorter than 8 characters would match by chance, so they are refused (a test bug).
pub fn note(name: &str, secret: &str) {
    assert!(
        secret.chars().count() >= 8 && !secret.contains(['\n', '\r', '\t']),
        "secrets::note({name:?}): a secret must be 8+ characters on one line"
    );
    let Some(d) = dir() else {
        return;
    };
    let name: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    // One write of one short line with O_APPEND: lines of concurrent tests do not interleave.
    let line = format!("{name}\t{secret}\n");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.join(SECRETS_FILE))
        .expect("open the secrets file");
    f.write_all(line.as_bytes())
        .expect("write the secrets file");
}

/// Keeps `bytes` as `kept/<test>/<name>` (events a test read, say), when logs are kept.
pub fn keep(name: &str, bytes: &[u8]) {
    let Some(d) = place("kept", name) else {
        return;
    };
    let _ = std::fs::write(d, bytes);
}

/// Copies the output files of a finished `drover` process (`files` in `from`) and, for a
/// `drover up`, its broker's log and small record store (`data_dir/broker`), into
/// `procs/<test binary>/<test>/<role>-N/`, when logs are kept. Best effort: a copy that fails
/// is skipped.
pub fn keep_process(role: &str, from: &Path, files: &[&str], data_dir: Option<&Path>) {
    let Some(to) = place("procs", role) else {
        return;
    };
    if std::fs::create_dir_all(&to).is_err() {
        return;
    }
    for f in files {
        let _ = std::fs::copy(from.join(f), to.join(f));
    }
    let Some(broker) = data_dir.map(|d| d.join("broker")) else {
        return;
    };
    let _ = std::fs::copy(broker.join("tansu.log"), to.join("tansu.log"));
    let store: Vec<PathBuf> = std::fs::read_dir(&broker)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("tansu.db"))
        })
        .collect();
    let size: u64 = store
        .iter()
        .filter_map(|p| p.metadata().ok())
        .map(|m| m.len())
        .sum();
    let kept = dir().map_or(0, |d| bytes_under(&d));
    if size > MAX_STORE_BYTES || kept + size > MAX_KEPT_BYTES {
        let _ = std::fs::write(
            to.join("broker-store-not-kept.txt"),
            format!(
                "the broker's store was {size} bytes (at most {MAX_STORE_BYTES} are kept, and \
                 {MAX_KEPT_BYTES} per run; {kept} were kept already)\n"
            ),
        );
        return;
    }
    for p in store {
        if let Some(n) = p.file_name() {
            let _ = std::fs::copy(&p, to.join(n));
        }
    }
}

/// Keeps the output of a `drover` command that ran to completion (`run_drover`): each
/// `(file name, bytes)` in `procs/<test binary>/<test>/<role>-N/`, when logs are kept.
pub fn keep_output(role: &str, files: &[(&str, &[u8])]) {
    let Some(to) = place("procs", role) else {
        return;
    };
    if std::fs::create_dir_all(&to).is_err() {
        return;
    }
    for (name, bytes) in files {
        let _ = std::fs::write(to.join(name), bytes);
    }
}

/// `<kept dir>/<kind>/<test binary>/<test>/<name>-<N>`, or `None` when logs are not kept.
fn place(kind: &str, name: &str) -> Option<PathBuf> {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = dir()?;
    let exe = std::env::current_exe()
        .ok()
        .and_then(|e| e.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "tests".into());
    // nextest runs one test per process; libtest names the test's thread after the test.
    let test = std::env::var("NEXTEST_TEST_NAME")
        .ok()
        .or_else(|| {
            std::thread::current()
                .name()
                .filter(|n| *n != "main")
                .map(String::from)
        })
        .unwrap_or_else(|| "unnamed".into());
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = d.join(kind).join(clean(&exe)).join(clean(&test));
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join(format!("{}-{}-{n}", clean(name), std::process::id())))
}

/// The bytes of the files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// A file name from `s`: `[A-Za-z0-9._-]`, at most 100 characters.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_plain() {
        assert_eq!(clean("a b/c::d"), "a_b_c__d");
        assert_eq!(clean(&"x".repeat(300)).len(), 100);
    }

    #[test]
    #[should_panic(expected = "8+ characters")]
    fn a_short_secret_is_a_test_bug() {
        note("short", "abc");
    }
}
