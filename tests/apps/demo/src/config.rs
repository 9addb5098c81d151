//! Configuration, read from environment variables only.
//!
//! Every variable is optional; an empty value counts as unset. A value that does not parse is an
//! error naming the variable, so a typo in a test's env never silently falls back to a default.

use std::fmt;

/// Port used when neither `PORT` nor `PORT0` is set.
pub const DEFAULT_PORT: u16 = 8080;

/// Largest `HOLD_MB` / `WRITE_MB` accepted: 1 TiB.
pub const MAX_MIB: u64 = 1 << 20;

/// How the background logger writes its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-11-21T23:03:25.123Z INFO demo seq=42 msg="tick"`
    Plain,
    /// `{"ts":"...","level":"info","msg":"tick","seq":42,"app":"demo"}`
    Json,
    /// Odd sequence numbers plain, even ones JSON.
    Mixed,
}

/// Everything the demo app can be told, with the defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Port to listen on, on 0.0.0.0 (`PORT`, else `PORT0`, else 8080).
    pub port: u16,
    /// Fixed delay added to every `GET /` (`LATENCY_MS`, default 0).
    pub latency_ms: u64,
    /// Uniform random extra delay in `0..=LATENCY_JITTER_MS` on `GET /` (default 0).
    pub latency_jitter_ms: u64,
    /// Fraction of `GET /` requests answered 500 (`ERROR_RATE`, 0.0–1.0, default 0).
    pub error_rate: f64,
    /// Background log lines per second (`LOG_RATE`, default 1; 0 = none).
    pub log_rate: f64,
    /// Format of the background lines (`LOG_FORMAT`: plain, json or mixed; default mixed).
    pub log_format: LogFormat,
    /// Name written into every background line (`APP_NAME`, default "demo").
    pub app_name: String,
    /// Print exactly this many background lines, then exit 0 (`EXIT_AFTER_LINES`, unset or 0 = run
    /// forever).
    pub exit_after_lines: Option<u64>,
    /// Text put in the message of every background line (`LINE_PREFIX`).
    pub line_prefix: Option<String>,
    /// MiB of memory to allocate at start, touch and keep until exit (`HOLD_MB`, default 0).
    pub hold_mb: u64,
    /// Threads that busy-loop forever (`SPIN_THREADS`, default 0).
    pub spin_threads: u32,
    /// MiB to write to [`crate::load::WRITE_PATH`] at start, then fsync (`WRITE_MB`, default 0).
    pub write_mb: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            latency_ms: 0,
            latency_jitter_ms: 0,
            error_rate: 0.0,
            log_rate: 1.0,
            log_format: LogFormat::Mixed,
            app_name: "demo".to_owned(),
            exit_after_lines: None,
            line_prefix: None,
            hold_mb: 0,
            spin_threads: 0,
            write_mb: 0,
        }
    }
}

/// A variable whose value could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    var: &'static str,
    value: String,
    expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: expected {}",
            self.var, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `get`, so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let defaults = Self::default();

        let port = match (var("PORT"), var("PORT0")) {
            (Some(v), _) => parse_port("PORT", v)?,
            (None, Some(v)) => parse_port("PORT0", v)?,
            (None, None) => defaults.port,
        };
        let latency_ms = parse_or("LATENCY_MS", var("LATENCY_MS"), defaults.latency_ms)?;
        let latency_jitter_ms = parse_or(
            "LATENCY_JITTER_MS",
            var("LATENCY_JITTER_MS"),
            defaults.latency_jitter_ms,
        )?;
        let error_rate = match var("ERROR_RATE") {
            Some(v) => match v.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => return Err(invalid("ERROR_RATE", v, "a number from 0.0 to 1.0")),
            },
            None => defaults.error_rate,
        };
        let log_rate = match var("LOG_RATE") {
            Some(v) => match v.parse::<f64>() {
                Ok(r) if r.is_finite() && r >= 0.0 => r,
                _ => return Err(invalid("LOG_RATE", v, "lines per second, 0 or more")),
            },
            None => defaults.log_rate,
        };
        let log_format = match var("LOG_FORMAT") {
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "plain" => LogFormat::Plain,
                "json" => LogFormat::Json,
                "mixed" => LogFormat::Mixed,
                _ => return Err(invalid("LOG_FORMAT", v, "plain, json or mixed")),
            },
            None => defaults.log_format,
        };
        let exit_after_lines = parse_or::<u64>("EXIT_AFTER_LINES", var("EXIT_AFTER_LINES"), 0)?;
        let hold_mb = parse_mib("HOLD_MB", var("HOLD_MB"))?;
        let spin_threads = parse_or("SPIN_THREADS", var("SPIN_THREADS"), defaults.spin_threads)?;
        let write_mb = parse_mib("WRITE_MB", var("WRITE_MB"))?;

        Ok(Self {
            port,
            latency_ms,
            latency_jitter_ms,
            error_rate,
            log_rate,
            log_format,
            app_name: var("APP_NAME").unwrap_or(defaults.app_name),
            exit_after_lines: (exit_after_lines > 0).then_some(exit_after_lines),
            // The prefix is kept verbatim: leading or trailing spaces may be meant.
            line_prefix: get("LINE_PREFIX").filter(|v| !v.is_empty()),
            hold_mb,
            spin_threads,
            write_mb,
        })
    }
}

fn invalid(var: &'static str, value: String, expected: &'static str) -> ConfigError {
    ConfigError {
        var,
        value,
        expected,
    }
}

fn parse_port(var: &'static str, value: String) -> Result<u16, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(var, value, "a port number from 0 to 65535"))
}

/// A size in MiB, 0 (the default) up to [`MAX_MIB`].
fn parse_mib(var: &'static str, value: Option<String>) -> Result<u64, ConfigError> {
    match value {
        Some(v) => match v.parse::<u64>() {
            Ok(mb) if mb <= MAX_MIB => Ok(mb),
            _ => Err(invalid(var, v, "a whole number of MiB, 0 to 1048576")),
        },
        None => Ok(0),
    }
}

fn parse_or<T: std::str::FromStr>(
    var: &'static str,
    value: Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        Some(v) => v
            .parse()
            .map_err(|_| invalid(var, v, "a whole number, 0 or more")),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        assert_eq!(config(&[]).unwrap(), Config::default());
        let c = Config::default();
        assert_eq!(c.port, 8080);
        assert_eq!(c.log_rate, 1.0);
        assert_eq!(c.log_format, LogFormat::Mixed);
        assert_eq!(c.app_name, "demo");
    }

    #[test]
    fn port_then_port0_then_default() {
        assert_eq!(config(&[("PORT", "9000")]).unwrap().port, 9000);
        assert_eq!(config(&[("PORT0", "31001")]).unwrap().port, 31001);
        assert_eq!(
            config(&[("PORT", "9000"), ("PORT0", "31001")])
                .unwrap()
                .port,
            9000
        );
        // An empty PORT (`-e PORT=`) counts as unset.
        assert_eq!(
            config(&[("PORT", ""), ("PORT0", "31001")]).unwrap().port,
            31001
        );
    }

    #[test]
    fn every_variable_is_read() {
        let c = config(&[
            ("LATENCY_MS", "25"),
            ("LATENCY_JITTER_MS", "5"),
            ("ERROR_RATE", "0.25"),
            ("LOG_RATE", "0.5"),
            ("LOG_FORMAT", "JSON"),
            ("APP_NAME", "shop"),
            ("EXIT_AFTER_LINES", "7"),
            ("LINE_PREFIX", "run-42 "),
            ("HOLD_MB", "100"),
            ("SPIN_THREADS", "2"),
            ("WRITE_MB", "64"),
        ])
        .unwrap();
        assert_eq!(
            c,
            Config {
                port: 8080,
                latency_ms: 25,
                latency_jitter_ms: 5,
                error_rate: 0.25,
                log_rate: 0.5,
                log_format: LogFormat::Json,
                app_name: "shop".to_owned(),
                exit_after_lines: Some(7),
                line_prefix: Some("run-42 ".to_owned()),
                hold_mb: 100,
                spin_threads: 2,
                write_mb: 64,
            }
        );
    }

    #[test]
    fn load_is_off_by_default_and_bounded() {
        let c = config(&[]).unwrap();
        assert_eq!((c.hold_mb, c.spin_threads, c.write_mb), (0, 0, 0));
        let c = config(&[("HOLD_MB", "1048576"), ("WRITE_MB", "0")]).unwrap();
        assert_eq!((c.hold_mb, c.write_mb), (MAX_MIB, 0));
        let msg = config(&[("WRITE_MB", "2000000")]).unwrap_err().to_string();
        assert_eq!(
            msg,
            "invalid WRITE_MB=\"2000000\": expected a whole number of MiB, 0 to 1048576"
        );
    }

    #[test]
    fn zero_exit_after_lines_means_forever() {
        assert_eq!(
            config(&[("EXIT_AFTER_LINES", "0")])
                .unwrap()
                .exit_after_lines,
            None
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            ("PORT", "80a"),
            ("PORT", "70000"),
            ("PORT0", "-1"),
            ("LATENCY_MS", "1.5"),
            ("LATENCY_JITTER_MS", "x"),
            ("ERROR_RATE", "1.5"),
            ("ERROR_RATE", "-0.1"),
            ("ERROR_RATE", "NaN"),
            ("LOG_RATE", "-1"),
            ("LOG_RATE", "inf"),
            ("LOG_FORMAT", "xml"),
            ("EXIT_AFTER_LINES", "-3"),
            ("HOLD_MB", "1.5"),
            ("HOLD_MB", "-1"),
            ("HOLD_MB", "1048577"),
            ("SPIN_THREADS", "many"),
            ("SPIN_THREADS", "-2"),
            ("WRITE_MB", "10M"),
        ];
        for (var, value) in cases {
            let err = config(&[(var, value)]).expect_err(var);
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("invalid {var}=\"{value}\"")),
                "{msg}"
            );
        }
    }
}
