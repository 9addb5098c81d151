//! Request-rate traces: the CSV `drover autoscale simulate` replays (`time_s,rps`, one row
//! per second or coarser; a header line is optional) and a seeded generator of the four
//! shapes the tests and the README use — step, spike, ramp and diurnal — with ±10 % noise.
use std::{fmt, io::Write, path::Path, str::FromStr};

use serde::Serialize;

/// One point of a trace: from `time_s` on, `rps` requests per second arrive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TracePoint {
    /// Seconds from the start.
    pub time_s: f64,
    /// Requests per second.
    pub rps: f64,
}

/// A trace, in time order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trace {
    /// Its points.
    pub points: Vec<TracePoint>,
}

/// A trace that does not read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read or written.
    #[error("{path}: cannot {what} the trace")]
    Io {
        /// The file.
        path: String,
        /// `read` or `write`.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `time_s,rps`.
    #[error("line {line}: {message}")]
    Parse {
        /// 1-based.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl Trace {
    /// Reads `time_s,rps` CSV text.
    pub fn parse(text: &str) -> Result<Self, TraceError> {
        let mut points: Vec<TracePoint> = Vec::new();
        for (i, l) in text.lines().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let bad = |message: String| TraceError::Parse {
                line: i + 1,
                message,
            };
            let (a, b) = l
                .split_once(',')
                .ok_or_else(|| bad(format!("{l:?} is not time_s,rps")))?;
            let (Ok(t), Ok(r)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>()) else {
                if points.is_empty() && i == 0 {
                    continue; // the header
                }
                return Err(bad(format!("{l:?}: time_s and rps must be numbers")));
            };
            if !(t.is_finite() && r.is_finite() && t >= 0.0 && r >= 0.0) {
                return Err(bad(format!("{l:?}: time_s and rps must be 0 or more")));
            }
            if points.last().is_some_and(|p| p.time_s >= t) {
                return Err(bad(format!("time {t} is not after the line before")));
            }
            points.push(TracePoint { time_s: t, rps: r });
        }
        if points.is_empty() {
            return Err(TraceError::Parse {
                line: 0,
                message: "no points: write lines time_s,rps".into(),
            });
        }
        Ok(Self { points })
    }

    /// Reads a CSV file.
    pub fn read(path: &Path) -> Result<Self, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
            path: path.display().to_string(),
            what: "read",
            source,
        })?;
        Self::parse(&text)
    }

    /// Writes the CSV (with its header).
    pub fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        writeln!(w, "time_s,rps")?;
        for p in &self.points {
            writeln!(w, "{},{:.2}", p.time_s, p.rps)?;
        }
        Ok(())
    }

    /// The CSV text.
    pub fn to_csv(&self) -> String {
        let mut out = Vec::new();
        // writing into a Vec cannot fail
        let _ = self.write(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The rate at `t` (the last point at or before it).
    pub fn rps_at(&self, t: f64) -> f64 {
        let i = self.points.partition_point(|p| p.time_s <= t);
        if i == 0 {
            0.0
        } else {
            self.points[i - 1].rps
        }
    }

    /// Seconds covered (the last point's time plus one second).
    pub fn duration_s(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.time_s + 1.0)
    }

    /// The highest rate.
    pub fn peak(&self) -> f64 {
        self.points.iter().map(|p| p.rps).fold(0.0, f64::max)
    }
}

/// The generated shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceKind {
    /// 50 rps, ×4 for 10 minutes, back to 50 (30 minutes).
    Step,
    /// 50 rps with two spikes to ×8 (30 s and 60 s; 30 minutes).
    Spike,
    /// 20 → 300 rps over 15 minutes, back over 10, then 5 minutes flat (30 minutes).
    Ramp,
    /// One day in an hour: 30 rps at night, 250 at the peak, a lunch dip.
    Diurnal,
}

impl TraceKind {
    /// Every kind.
    pub const ALL: [TraceKind; 4] = [
        TraceKind::Step,
        TraceKind::Spike,
        TraceKind::Ramp,
        TraceKind::Diurnal,
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            TraceKind::Step => "step",
            TraceKind::Spike => "spike",
            TraceKind::Ramp => "ramp",
            TraceKind::Diurnal => "diurnal",
        }
    }
}

impl fmt::Display for TraceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TraceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown trace kind {s:?}: step, spike, ramp or diurnal"))
    }
}

/// A trace of `kind`, one point per second, with ±10 % noise drawn from `seed` (the same
/// seed gives the same trace).
pub fn generate(kind: TraceKind, seed: u64) -> Trace {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (len, shape): (u32, Box<dyn Fn(f64) -> f64>) = match kind {
        TraceKind::Step => (
            1800,
            Box::new(|t| {
                if (300.0..900.0).contains(&t) {
                    200.0
                } else {
                    50.0
                }
            }),
        ),
        TraceKind::Spike => (
            1800,
            Box::new(|t| {
                if (300.0..330.0).contains(&t) || (1000.0..1060.0).contains(&t) {
                    400.0
                } else {
                    50.0
                }
            }),
        ),
        TraceKind::Ramp => (
            1800,
            Box::new(|t| {
                if t < 900.0 {
                    20.0 + 280.0 * t / 900.0
                } else if t < 1500.0 {
                    300.0 - 280.0 * (t - 900.0) / 600.0
                } else {
                    20.0
                }
            }),
        ),
        TraceKind::Diurnal => (
            3600,
            Box::new(|t| {
                let day = t / 3600.0 * std::f64::consts::TAU;
                let base = 30.0 + 220.0 * (1.0 - day.cos()) / 2.0;
                // lunch: a dip of 25 % around the middle of the day
                let lunch = 1.0 - 0.25 * (-((t - 1800.0) / 120.0).powi(2)).exp();
                base * lunch
            }),
        ),
    };
    let points = (0..len)
        .map(|s| {
            let t = s as f64;
            let noise = 1.0 + (rng.f64() * 2.0 - 1.0) * 0.1;
            TracePoint {
                time_s: t,
                rps: (shape(t) * noise).max(0.0),
            }
        })
        .collect();
    Trace { points }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_trace_and_noise_stays_within_ten_percent() {
        for k in TraceKind::ALL {
            let a = generate(k, 7);
            assert_eq!(a, generate(k, 7), "{k}");
            assert_ne!(a, generate(k, 8), "{k}");
        }
        let s = generate(TraceKind::Step, 1);
        assert_eq!(s.points.len(), 1800);
        for p in &s.points {
            let base = if (300.0..900.0).contains(&p.time_s) {
                200.0
            } else {
                50.0
            };
            assert!((p.rps / base - 1.0).abs() <= 0.1 + 1e-9, "{p:?}");
        }
        assert_eq!(generate(TraceKind::Diurnal, 1).duration_s(), 3600.0);
    }

    #[test]
    fn csv_round_trips_and_bad_lines_are_named() {
        let t = generate(TraceKind::Spike, 3);
        let back = Trace::parse(&t.to_csv()).expect("parses");
        assert_eq!(back.points.len(), t.points.len());
        assert!((back.rps_at(310.0) - t.rps_at(310.0)).abs() < 0.01);
        assert_eq!(back.rps_at(-1.0), 0.0);
        let e = Trace::parse("time_s,rps\n0,10\n1,x\n").expect_err("bad");
        assert_eq!(
            e.to_string(),
            "line 3: \"1,x\": time_s and rps must be numbers"
        );
        let e = Trace::parse("0,10\n0,12\n").expect_err("bad");
        assert!(
            e.to_string().starts_with("line 2: time 0 is not after"),
            "{e}"
        );
        assert!(Trace::parse("time_s,rps\n").is_err());
        assert_eq!("ramp".parse::<TraceKind>(), Ok(TraceKind::Ramp));
        assert!("wave".parse::<TraceKind>().is_err());
    }
}
