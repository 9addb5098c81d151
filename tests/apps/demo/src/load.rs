//! Resource load for the stats tests: memory held (`HOLD_MB`), busy CPU threads
//! (`SPIN_THREADS`) and a file written once (`WRITE_MB`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crate::config::Config;

/// The file `WRITE_MB` writes.
pub const WRITE_PATH: &str = "/tmp/drover-demo-write";

/// One MiB, the unit of `HOLD_MB` and `WRITE_MB` and the size of each write.
const MIB: usize = 1 << 20;

/// Starts the configured load: allocates and touches `HOLD_MB` before returning, then starts
/// the `SPIN_THREADS` spinners and the `WRITE_MB` writer in the background. Everything lasts
/// until the process exits. Fails only when the memory cannot be allocated.
pub fn start(config: &Config) -> io::Result<()> {
    if config.hold_mb > 0 {
        hold(config.hold_mb)?;
    }
    // Never stopped: the spinners run until the process exits.
    let never = Arc::new(AtomicBool::new(false));
    drop(spin(config.spin_threads, &never));
    if config.write_mb > 0 {
        let mb = config.write_mb;
        thread::Builder::new()
            .name("write-load".to_owned())
            .spawn(move || {
                if let Err(e) = write_file(Path::new(WRITE_PATH), mb) {
                    eprintln!("drover-demo: WRITE_MB: cannot write {WRITE_PATH}: {e}");
                }
            })?;
    }
    Ok(())
}

/// Allocates `mb` MiB, writes every byte (so every page is resident, and none is a shared zero
/// page) and keeps them for the rest of the process.
pub fn hold(mb: u64) -> io::Result<&'static [u8]> {
    let too_big = || io::Error::other(format!("cannot allocate {mb} MiB"));
    let bytes = usize::try_from(mb)
        .ok()
        .and_then(|mb| mb.checked_mul(MIB))
        .ok_or_else(too_big)?;
    let mut held = Vec::new();
    held.try_reserve_exact(bytes).map_err(|_| too_big())?;
    held.resize(bytes, 0xa5_u8);
    // Leaked so it lives until exit; black_box so the writes cannot be optimized away.
    Ok(std::hint::black_box(held.leak()))
}

/// Starts `threads` threads that busy-loop until `stop` is set; each returns how many rounds
/// it ran.
pub fn spin(threads: u32, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<u64>> {
    (0..threads)
        .map(|i| {
            let stop = Arc::clone(stop);
            thread::Builder::new()
                .name(format!("spin-{i}"))
                .spawn(move || {
                    let mut rounds = 0u64;
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = std::hint::black_box(
                                x.wrapping_mul(6364136223846793005).wrapping_add(1),
                            );
                        }
                        rounds += 1;
                    }
                    rounds
                })
                .expect("the OS lets the demo start a thread")
        })
        .collect()
}

/// Writes `mb` MiB to `path` in 1 MiB writes (creating its directory, which a `FROM scratch`
/// image lacks, and replacing the file), then fsyncs it.
pub fn write_file(path: &Path, mb: u64) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut file = File::create(path)?;
    let chunk = vec![0x5a_u8; MIB];
    for _ in 0..mb {
        file.write_all(&chunk)?;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn hold_allocates_and_fills() {
        let held = hold(2).unwrap();
        assert_eq!(held.len(), 2 * MIB);
        assert!(held.iter().step_by(4096).all(|&b| b == 0xa5));
        assert!(hold(u64::MAX).is_err());
    }

    #[test]
    fn spinners_spin_until_stopped() {
        let stop = Arc::new(AtomicBool::new(false));
        assert!(spin(0, &stop).is_empty());
        let handles = spin(2, &stop);
        thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            assert!(h.join().unwrap() > 0);
        }
    }

    #[test]
    fn write_file_writes_whole_mebibytes_into_a_new_directory() {
        let dir = std::env::temp_dir().join(format!("drover-demo-load-{}", std::process::id()));
        let path = dir.join("sub").join("drover-demo-write");
        write_file(&path, 3).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 3 * MIB as u64);
        // written again: replaced, not appended
        write_file(&path, 1).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), MIB as u64);
        write_file(&path, 0).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn start_with_defaults_does_nothing() {
        start(&Config::default()).unwrap();
    }
}
