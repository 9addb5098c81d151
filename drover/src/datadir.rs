//! The data directory: where every role keeps its state.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

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
}
