//! The background logger: `LOG_RATE` numbered "tick" lines per second.

use std::time::{Duration, SystemTime};

use tokio::time::{self, MissedTickBehavior};

use crate::config::Config;
use crate::logline::{Output, Tick};

/// Prints background lines numbered from 1 until `EXIT_AFTER_LINES` lines have been printed, then
/// returns; without `EXIT_AFTER_LINES` it never returns.
///
/// With `LOG_RATE=0` no line is printed, unless `EXIT_AFTER_LINES` is set: then the lines are
/// printed as fast as possible.
pub async fn run(config: &Config, out: &Output) {
    let period = (config.log_rate > 0.0)
        .then(|| Duration::from_secs_f64(1.0 / config.log_rate))
        .filter(|p| !p.is_zero());
    let mut interval = period.map(|p| {
        let mut interval = time::interval(p);
        // Catch up after a stall so the average rate is the configured one.
        interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
        interval
    });
    if interval.is_none() && config.exit_after_lines.is_none() {
        return std::future::pending().await;
    }

    for seq in 1.. {
        match interval.as_mut() {
            // The first tick completes at once: line 1 is printed at startup.
            Some(interval) => {
                interval.tick().await;
            }
            None => tokio::task::yield_now().await,
        }
        let tick = Tick {
            ts: SystemTime::now(),
            seq,
            app: &config.app_name,
            prefix: config.line_prefix.as_deref(),
        };
        out.line(tick.level().stream(), &tick.format(config.log_format));
        if config.exit_after_lines == Some(seq) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogFormat;
    use crate::logline::{Captured, Stream};
    use std::sync::Arc;

    fn captured() -> (Output, Captured) {
        let lines = Captured::default();
        (Output::Capture(Arc::clone(&lines)), lines)
    }

    #[tokio::test(start_paused = true)]
    async fn prints_exactly_exit_after_lines_at_the_rate() {
        let config = Config {
            log_rate: 10.0,
            log_format: LogFormat::Plain,
            exit_after_lines: Some(55),
            ..Config::default()
        };
        let (out, lines) = captured();
        let start = time::Instant::now();
        run(&config, &out).await;
        // 55 lines at 10/s: the first at once, the last 5.4 s later.
        assert_eq!(start.elapsed(), Duration::from_millis(5400));

        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 55);
        for (i, (stream, line)) in lines.iter().enumerate() {
            let seq = i + 1;
            assert!(line.contains(&format!(" seq={seq} ")), "{line}");
            let want = if seq == 50 {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            assert_eq!(*stream, want, "{line}");
        }
        assert!(lines[9].1.contains(" WARN "));
        assert!(lines[49].1.contains(" ERROR "));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_zero_with_exit_after_lines_prints_at_once() {
        let config = Config {
            log_rate: 0.0,
            exit_after_lines: Some(3),
            line_prefix: Some("tok".to_owned()),
            ..Config::default()
        };
        let (out, lines) = captured();
        let start = time::Instant::now();
        run(&config, &out).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|(_, l)| l.contains("tok tick")));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_zero_prints_nothing() {
        let config = Config {
            log_rate: 0.0,
            ..Config::default()
        };
        let (out, lines) = captured();
        let ran = time::timeout(Duration::from_secs(3600), run(&config, &out)).await;
        assert!(ran.is_err(), "run must not return without EXIT_AFTER_LINES");
        assert!(lines.lock().unwrap().is_empty());
    }
}
