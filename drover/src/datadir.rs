//! The data directory: where every role keeps its state, one subdirectory per component
//! (`broker/`, `collector/`, `logs/`, `metrics/`, `scheduler/`), each locked by the process
//! that writes it.
use std::{
    fs::File,
    io::{Read, Seek, Write},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context};
use nix::fcntl::{Flock, FlockArg};

/// Create the data dir if needed and check that it is writable, with an error that says
/// what to do. Returns the absolute path.
pub fn prepare(dir: &Path) -> anyhow::Result<PathBuf> {
    let fail = |e: &dyn std::fmt::Display| {
        format!(
            "cannot use {} as the data dir: {e}; pass --data-dir with a writable directory",
            dir.display()
        )
    };
    if dir.exists() && !dir.is_dir() {
        bail!(fail(&"it exists and is not a directory"));
    }
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!(fail(&e)))?;
    let probe = dir.join(".drover-write-test");
    std::fs::write(&probe, b"ok").map_err(|e| anyhow::anyhow!(fail(&e)))?;
    let _ = std::fs::remove_file(&probe);
    std::fs::canonicalize(dir).with_context(|| fail(&"cannot resolve its path"))
}

/// An exclusive lock on a component's directory, held while the process runs (the kernel
/// releases it when the process ends, even on SIGKILL). The lock file holds the owner's PID
/// and role, for the message a second owner gets.
#[derive(Debug)]
pub struct DirLock {
    _lock: Flock<File>,
}

/// Lock `dir` (created if missing) for `role` (e.g. `drover up`), or say who holds it.
pub fn lock(dir: &Path, role: &str) -> anyhow::Result<DirLock> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create {}; pass --data-dir with a writable directory",
            dir.display()
        )
    })?;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut file, errno)) => {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let owner = owner.trim();
            if errno == nix::errno::Errno::EWOULDBLOCK {
                bail!(
                    "{} is in use by another drover ({}): stop it first, or pass --data-dir with another directory",
                    dir.display(),
                    if owner.is_empty() { "PID unknown".to_string() } else { owner.to_string() }
                );
            }
            bail!("cannot lock {}: {errno}", path.display());
        }
    };
    let owner = format!("PID {}, {role}\n", std::process::id());
    lock.set_len(0)
        .and_then(|()| lock.rewind())
        .and_then(|()| lock.write_all(owner.as_bytes()))
        .with_context(|| format!("cannot write the lock file {}", path.display()))?;
    Ok(DirLock { _lock: lock })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_missing_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let abs = prepare(&dir).unwrap();
        assert!(abs.is_absolute() && abs.is_dir());
    }

    #[test]
    fn a_file_in_the_way_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let err = prepare(&file.join("sub")).unwrap_err().to_string();
        assert!(err.contains("pass --data-dir"), "{err}");
        let err = prepare(&file).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
    }

    #[test]
    fn a_second_owner_is_refused_with_the_first_ones_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("broker");
        let first = lock(&dir, "drover up").unwrap();
        assert!(dir.join("LOCK").is_file());
        let err = lock(&dir, "drover broker").unwrap_err().to_string();
        assert!(
            err.contains(&format!("PID {}, drover up", std::process::id()))
                && err.contains("pass --data-dir"),
            "{err}"
        );
        drop(first);
        lock(&dir, "drover broker").expect("free again once dropped");
    }
}
