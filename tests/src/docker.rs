//! The local Docker engine: a client, the test images, and containers removed on drop.
use std::{process::Command, sync::OnceLock};

use bollard::Docker;

/// The demo app image built by `tests/images/build.sh`.
pub const DEMO_IMAGE: &str = "drover-demo:latest";
/// The busybox image built by `tests/images/build.sh`.
pub const BUSYBOX_IMAGE: &str = "drover-busybox:latest";

/// A client for the local engine, with the API version negotiated (the engine may be
/// older than bollard's default).
pub async fn docker() -> Docker {
    let d = Docker::connect_with_local_defaults().expect("docker client");
    d.negotiate_version()
        .await
        .expect("the Docker engine answers on its local socket (is dockerd running?)")
}

/// Build the test images if they are not current (once per test process; the script
/// itself serialises concurrent runs with a lock file and skips current images).
pub fn ensure_images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = crate::repo_root().join("tests/images/build.sh");
        let status = Command::new("bash")
            .arg(&script)
            .status()
            .expect("run tests/images/build.sh");
        assert!(status.success(), "tests/images/build.sh failed: {status}");
    });
}

/// Removes the named container (`docker rm -f`) when dropped.
#[derive(Debug)]
pub struct ContainerGuard(pub String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.0])
            .output();
    }
}
