//! A component's blocking loop (the logpipe, the metrics store) on its own named thread,
//! stopped by a flag it checks: the loop finishes what is pending (commits, flushes) and
//! returns, and [`Worker::stop`] waits for it without blocking the async runtime.
use std::{
    fmt::Display,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
};

use anyhow::Context;

/// A running loop.
#[derive(Debug)]
pub struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Runs `run(stop_flag)` on a thread named `name`; an error it returns is logged as
    /// "the `name` stopped".
    pub fn spawn<E: Display>(
        name: &'static str,
        run: impl FnOnce(Arc<AtomicBool>) -> Result<(), E> + Send + 'static,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                if let Err(e) = run(flag) {
                    tracing::error!(error = %e, "the {name} stopped");
                }
            })
            .with_context(|| format!("cannot start the {name} thread"))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Asks the loop to stop and waits until it returned.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_waits_for_the_loop_to_finish() {
        let done = Arc::new(AtomicBool::new(false));
        let d = Arc::clone(&done);
        let w = Worker::spawn("test-loop", move |stop| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            d.store(true, Ordering::Relaxed);
            Ok::<(), String>(())
        })
        .unwrap();
        w.stop().await;
        assert!(done.load(Ordering::Relaxed));
    }
}
