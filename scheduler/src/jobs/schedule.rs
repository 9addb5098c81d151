//! When a job runs: a cron expression (the `cron` crate; 5 fields, or 6–7 with seconds and
//! years) or an ISO 8601 repeating interval `R[n]/start/period` as Chronos has it, read in an
//! IANA timezone (`chrono-tz`). Pure: every function takes the time it is asked about.
//!
//! Wall-clock semantics across DST changes, for cron and for the calendar parts (`D`, `W`,
//! `M`, `Y`) of ISO periods: each local time runs at most once — an ambiguous local time
//! (the hour repeated when clocks go back) runs at its first occurrence, and a local time
//! that does not exist (the hour skipped when clocks go forward) runs as late as the skip
//! (02:30 on a day that jumps from 02:00 to 03:00 runs at 03:30, like Temporal's
//! "compatible"). Time parts of ISO periods (`PT1H`) are exact durations.
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDateTime, TimeZone, Utc};
pub use chrono_tz::Tz;

/// Why a schedule does not read (the message says what would).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

fn err<T>(s: impl Into<String>) -> Result<T, ScheduleError> {
    Err(ScheduleError(s.into()))
}

/// An ISO 8601 duration split as calendar arithmetic needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Years × 12 + months (local calendar).
    pub months: u32,
    /// Weeks × 7 + days (local calendar).
    pub days: u32,
    /// Hours, minutes, seconds (exact).
    pub seconds: u64,
}

impl Period {
    /// Reads `P1D`, `PT30S`, `P1Y2M3W4DT5H6M7S`, `PT0.5S` is refused (whole seconds).
    pub fn parse(s: &str) -> Result<Self, ScheduleError> {
        let rest = s.strip_prefix('P').ok_or_else(|| {
            ScheduleError(format!(
                "the period {s:?} must start with P (e.g. PT1H, P1D)"
            ))
        })?;
        let (date, time) = match rest.split_once('T') {
            Some((d, t)) => (d, Some(t)),
            None => (rest, None),
        };
        let mut p = Period {
            months: 0,
            days: 0,
            seconds: 0,
        };
        let mut any = false;
        let mut read = |part: &str,
                        units: &[(char, u64)],
                        time: bool|
         -> Result<(), ScheduleError> {
            let mut num = String::new();
            for c in part.chars() {
                if c.is_ascii_digit() {
                    num.push(c);
                    continue;
                }
                let Some(&(_, mult)) = units.iter().find(|(u, _)| *u == c) else {
                    return err(format!(
                        "the period {s:?} has an unknown unit {c:?} (use Y M W D before T, H M S after; whole numbers)"
                    ));
                };
                let n: u64 = num.parse().map_err(|_| {
                    ScheduleError(format!("the period {s:?} has no number before {c:?}"))
                })?;
                num.clear();
                any = true;
                let n = n.saturating_mul(mult);
                match (time, c) {
                    (false, 'Y') | (false, 'M') => p.months = p.months.saturating_add(n as u32),
                    (false, _) => p.days = p.days.saturating_add(n as u32),
                    (true, _) => p.seconds = p.seconds.saturating_add(n),
                }
            }
            if !num.is_empty() {
                return err(format!("the period {s:?} ends in a number without a unit"));
            }
            Ok(())
        };
        read(date, &[('Y', 12), ('M', 1), ('W', 7), ('D', 1)], false)?;
        if let Some(t) = time {
            read(t, &[('H', 3600), ('M', 60), ('S', 1)], true)?;
        }
        if !any || (p.months == 0 && p.days == 0 && p.seconds == 0) {
            return err(format!(
                "the period {s:?} is empty: a job cannot repeat every 0 s"
            ));
        }
        Ok(p)
    }

    fn is_exact(&self) -> bool {
        self.months == 0 && self.days == 0
    }
}

/// A job's schedule, parsed.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A cron expression, with seconds (5-field expressions get `0 ` in front).
    Cron {
        /// The parsed expression.
        cron: Box<cron::Schedule>,
        /// Its timezone.
        tz: Tz,
    },
    /// `R[n]/start/period`.
    Repeat {
        /// Runs in all; None = forever.
        count: Option<u64>,
        /// The first run.
        start: DateTime<Utc>,
        /// Between runs.
        period: Period,
        /// Timezone of the calendar parts of the period.
        tz: Tz,
    },
}

/// Reads an IANA timezone name (`Europe/Berlin`, `UTC`); empty is UTC.
pub fn parse_timezone(s: &str) -> Result<Tz, ScheduleError> {
    if s.trim().is_empty() {
        return Ok(Tz::UTC);
    }
    Tz::from_str(s.trim()).map_err(|_| {
        ScheduleError(format!(
            "unknown timezone {s:?}: use an IANA name such as UTC, Europe/Berlin, America/New_York"
        ))
    })
}

/// Is this a repeating-interval schedule (ISO 8601) rather than cron?
pub fn is_iso(s: &str) -> bool {
    s.trim_start().starts_with('R')
}

impl Schedule {
    /// Reads `expr` in `tz`. An ISO schedule with no start (`R/ /PT1H` or `R//PT1H`) starts at
    /// `now`.
    pub fn parse(expr: &str, tz: Tz, now: DateTime<Utc>) -> Result<Self, ScheduleError> {
        let expr = expr.trim();
        if expr.is_empty() {
            return err(
                "the schedule is empty: give a cron expression (*/5 * * * *) or R[n]/start/period",
            );
        }
        if is_iso(expr) {
            return Self::parse_iso(expr, tz, now);
        }
        let fields = expr.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {expr}"),
            6 | 7 => expr.to_string(),
            n => {
                return err(format!(
                    "the cron expression {expr:?} has {n} fields: give 5 (minute hour day month weekday), or 6–7 with seconds first and a year last"
                ))
            }
        };
        let cron = cron::Schedule::from_str(&full).map_err(|e| {
            ScheduleError(format!("the cron expression {expr:?} does not read: {e}"))
        })?;
        if cron.after(&now).next().is_none() {
            return err(format!(
                "the cron expression {expr:?} matches no time after now"
            ));
        }
        Ok(Self::Cron {
            cron: Box::new(cron),
            tz,
        })
    }

    fn parse_iso(expr: &str, tz: Tz, now: DateTime<Utc>) -> Result<Self, ScheduleError> {
        let parts: Vec<&str> = expr.split('/').collect();
        if parts.len() != 3 {
            return err(format!(
                "the schedule {expr:?} is not R[n]/start/period (e.g. R/2026-01-01T00:00:00Z/PT1H, R5//P1D)"
            ));
        }
        let n = &parts[0][1..];
        let count = if n.is_empty() {
            None
        } else {
            Some(n.parse::<u64>().map_err(|_| {
                ScheduleError(format!(
                    "the repetitions {:?} of {expr:?} are not a number (R, R5)",
                    parts[0]
                ))
            })?)
        };
        let start = if parts[1].trim().is_empty() {
            now
        } else {
            DateTime::parse_from_rfc3339(parts[1].trim())
                .map_err(|e| {
                    ScheduleError(format!(
                        "the start {:?} of {expr:?} is not an RFC 3339 time such as 2026-01-01T00:00:00Z: {e}",
                        parts[1]
                    ))
                })?
                .with_timezone(&Utc)
        };
        let period = Period::parse(parts[2].trim())?;
        Ok(Self::Repeat {
            count,
            start,
            period,
            tz,
        })
    }

    /// The first run strictly after `t`; None when the schedule has ended.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Cron { cron, tz } => cron_next(cron, *tz, t),
            Self::Repeat {
                count,
                start,
                period,
                tz,
            } => {
                if t < *start {
                    return (*count != Some(0)).then_some(*start);
                }
                let k = first_index_after(*start, *period, *tz, t)?;
                if count.is_some_and(|c| k >= c) {
                    return None;
                }
                Some(occurrence(*start, *period, *tz, k)?)
            }
        }
    }

    /// The first run of a schedule defined (or enabled) at `now`: an ISO schedule's start
    /// may be `now` itself; a cron schedule's first time is after `now`.
    pub fn first_from(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Cron { .. } => self.next_after(now),
            // A start resolved to "now" when the job was defined is kept to the millisecond:
            // it is still the first run a moment later.
            Self::Repeat { .. } => self.next_at_or_after(now - Duration::seconds(1)),
        }
    }

    /// The first run at or after `t`.
    pub fn next_at_or_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_after(t - Duration::milliseconds(1))
            .filter(|n| *n >= t)
            .or_else(|| self.next_after(t))
    }
}

/// Wall-clock time in `tz` → the instant it names (first of two; past a skip, late by it).
pub fn resolve_local(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => {
            // In a gap: read it with the offset in force before the gap.
            let before = tz
                .from_local_datetime(&(naive - Duration::hours(3)))
                .earliest()?;
            use chrono::Offset;
            let off = before.offset().fix();
            Some(Utc.from_utc_datetime(&(naive - Duration::seconds(off.local_minus_utc() as i64))))
        }
    }
}

fn cron_next(cron: &cron::Schedule, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Walk the expression over wall-clock times (as if UTC), then map each to an instant.
    use chrono::Offset;
    let local = t.with_timezone(&tz).naive_local();
    // Just after a skip forward, a wall-clock time inside the skip (before `local`) may
    // name an instant after `t`: then start from before the skip. Candidates not after `t`
    // (the repeated hour of a fall-back) are passed over.
    let earlier = t - Duration::hours(3);
    let shifted = tz.offset_from_utc_datetime(&earlier.naive_utc()).fix()
        != tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let from = if shifted {
        Utc.from_utc_datetime(&earlier.with_timezone(&tz).naive_local())
    } else {
        Utc.from_utc_datetime(&local)
    };
    for (i, c) in cron.after(&from).enumerate() {
        let at = resolve_local(tz, c.naive_utc())?;
        if at > t {
            return Some(at);
        }
        if i > 100_000 {
            return None;
        }
    }
    None
}

fn add_calendar(tz: Tz, start: DateTime<Utc>, months: u64, days: u64) -> Option<DateTime<Utc>> {
    let local = start.with_timezone(&tz).naive_local();
    let d = local
        .checked_add_months(Months::new(u32::try_from(months).ok()?))?
        .checked_add_signed(Duration::days(i64::try_from(days).ok()?))?;
    // A month add that clamped (Jan 31 + 1M) keeps chrono's answer (Feb 28/29).
    let _ = d.day();
    resolve_local(tz, d)
}

/// Run `k` (0 = the start).
fn occurrence(start: DateTime<Utc>, p: Period, tz: Tz, k: u64) -> Option<DateTime<Utc>> {
    let base = if p.is_exact() {
        start
    } else {
        add_calendar(tz, start, p.months as u64 * k, p.days as u64 * k)?
    };
    base.checked_add_signed(Duration::seconds(
        i64::try_from(p.seconds.checked_mul(k)?).ok()?,
    ))
}

/// The smallest k with occurrence(k) > t (t ≥ start).
fn first_index_after(start: DateTime<Utc>, p: Period, tz: Tz, t: DateTime<Utc>) -> Option<u64> {
    let elapsed = (t - start).num_milliseconds().max(0) as u64;
    // An estimate from the period's nominal length, then corrected by stepping.
    let nominal_ms = (p.months as u64 * 30 * 86_400 + p.days as u64 * 86_400 + p.seconds) * 1000;
    let mut k = (elapsed / nominal_ms.max(1)).saturating_sub(1);
    while k > 0 && occurrence(start, p, tz, k)? > t {
        k = k.saturating_sub(1 + k / 8);
    }
    loop {
        if occurrence(start, p, tz, k)? > t {
            return Some(k);
        }
        k += 1;
    }
}

/// What a tick does about a job whose next run is due.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    /// The scheduled time of the run to start now, if one is within epsilon.
    pub run: Option<DateTime<Utc>>,
    /// Scheduled times passed without a run: missed by more than epsilon, or more than one
    /// due at once (one run stands for them); the first and the last, and how many (capped
    /// at [`MAX_COUNTED`]).
    pub skipped: Option<(DateTime<Utc>, DateTime<Utc>, u64)>,
    /// The next scheduled time after now; None when the schedule has ended.
    pub next: Option<DateTime<Utc>>,
}

/// Missed runs are counted up to this many (then the count says "at least").
pub const MAX_COUNTED: u64 = 10_000;

/// `next` came (`next ≤ now`): the run to start (the latest scheduled time within `epsilon`
/// of now), what was skipped, and the following scheduled time. Never starts two runs for
/// one scheduled time: the caller keeps `next` (persisted) and passes it back.
pub fn due(
    schedule: &Schedule,
    next: DateTime<Utc>,
    now: DateTime<Utc>,
    epsilon: std::time::Duration,
) -> Due {
    let eps = Duration::from_std(epsilon).unwrap_or(Duration::MAX);
    let cutoff = now
        .checked_sub_signed(eps)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    // Every scheduled time in [next, now]: the last one within epsilon runs.
    let mut times = 0u64;
    let mut first = next;
    let mut last = next;
    let mut at = Some(next);
    while let Some(x) = at.filter(|x| *x <= now) {
        if times == 0 {
            first = x;
        }
        times += 1;
        last = x;
        if times >= MAX_COUNTED {
            // Jump: find the last time ≤ now from just before now.
            let mut y = schedule.next_at_or_after(cutoff.min(now));
            while let Some(z) = y.filter(|z| *z <= now) {
                last = z;
                y = schedule.next_after(z);
            }
            break;
        }
        at = schedule.next_after(x);
    }
    let run = (times > 0 && last >= cutoff).then_some(last);
    let skipped_n = times.saturating_sub(run.is_some() as u64);
    let skipped = (skipped_n > 0).then(|| {
        let skipped_last = if run.is_some() {
            // The one before `last`.
            let mut prev = first;
            let mut y = Some(first);
            while let Some(z) = y.filter(|z| *z < last) {
                prev = z;
                y = schedule.next_after(z);
                if skipped_n >= MAX_COUNTED {
                    break;
                }
            }
            prev
        } else {
            last
        };
        (first, skipped_last, skipped_n)
    });
    Due {
        run,
        skipped,
        next: schedule.next_after(now),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration as StdDuration;

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn utc(expr: &str, now: &str) -> Schedule {
        Schedule::parse(expr, Tz::UTC, t(now)).unwrap()
    }

    #[test]
    fn cron_with_and_without_seconds() {
        let s = utc("*/5 * * * *", "2026-01-01T00:00:00Z");
        assert_eq!(
            s.next_after(t("2026-01-01T00:00:00Z")),
            Some(t("2026-01-01T00:05:00Z"))
        );
        assert_eq!(
            s.next_after(t("2026-01-01T00:04:59Z")),
            Some(t("2026-01-01T00:05:00Z"))
        );
        let s = utc("*/10 * * * * *", "2026-01-01T00:00:00Z");
        assert_eq!(
            s.next_after(t("2026-01-01T00:00:01Z")),
            Some(t("2026-01-01T00:00:10Z"))
        );
        // With a year: ends.
        let s = utc("0 0 0 1 1 * 2027", "2026-01-01T00:00:00Z");
        assert_eq!(
            s.next_after(t("2026-06-01T00:00:00Z")),
            Some(t("2027-01-01T00:00:00Z"))
        );
        assert_eq!(s.next_after(t("2027-06-01T00:00:00Z")), None);
    }

    #[test]
    fn bad_expressions_say_what_would_read() {
        let now = t("2026-01-01T00:00:00Z");
        for (expr, want) in [
            ("", "empty"),
            ("* * *", "3 fields"),
            ("61 * * * *", "does not read"),
            ("R5/2026-01-01/PT1H", "RFC 3339"),
            ("R5/2026-01-01T00:00:00Z/1H", "must start with P"),
            ("Rx//PT1H", "not a number"),
            ("R//PT0S", "empty"),
            ("R//PT1X", "unknown unit"),
            ("R/2026-01-01T00:00:00Z", "R[n]/start/period"),
        ] {
            let e = Schedule::parse(expr, Tz::UTC, now).unwrap_err().to_string();
            assert!(e.contains(want), "{expr:?}: {e}");
        }
        assert!(parse_timezone("Mars/Olympus")
            .unwrap_err()
            .to_string()
            .contains("IANA"));
        assert_eq!(parse_timezone("").unwrap(), Tz::UTC);
    }

    #[test]
    fn iso_repeats_count_start_and_period() {
        let s = utc("R3/2026-01-01T10:00:00Z/PT1H", "2025-01-01T00:00:00Z");
        assert_eq!(
            s.next_after(t("2025-06-01T00:00:00Z")),
            Some(t("2026-01-01T10:00:00Z"))
        );
        assert_eq!(
            s.next_after(t("2026-01-01T10:00:00Z")),
            Some(t("2026-01-01T11:00:00Z"))
        );
        assert_eq!(
            s.next_after(t("2026-01-01T11:30:00Z")),
            Some(t("2026-01-01T12:00:00Z"))
        );
        assert_eq!(
            s.next_after(t("2026-01-01T12:00:00Z")),
            None,
            "R3: three runs"
        );
        // No start: from now; no count: forever.
        let s = utc("R//PT30S", "2026-01-01T00:00:00Z");
        assert_eq!(
            s.next_after(t("2026-01-01T00:00:00Z")),
            Some(t("2026-01-01T00:00:30Z"))
        );
        assert_eq!(
            s.next_after(t("2036-01-01T00:00:10Z")),
            Some(t("2036-01-01T00:00:30Z"))
        );
        // A start resolved from "now" (kept to the millisecond) is the first run, even
        // asked a moment later.
        let now = t("2026-01-01T00:00:00.123456Z");
        let s = Schedule::parse("R1/2026-01-01T00:00:00.123Z/PT1H", Tz::UTC, now).unwrap();
        assert_eq!(s.first_from(now), Some(t("2026-01-01T00:00:00.123Z")));
        // Months keep the day of the month.
        let s = utc("R/2026-01-15T08:00:00Z/P1M", "2026-01-01T00:00:00Z");
        assert_eq!(
            s.next_after(t("2026-03-20T00:00:00Z")),
            Some(t("2026-04-15T08:00:00Z"))
        );
        assert_eq!(
            Period::parse("P1Y2M3W4DT5H6M7S").unwrap(),
            Period {
                months: 14,
                days: 25,
                seconds: 5 * 3600 + 6 * 60 + 7
            }
        );
    }

    #[test]
    fn timezones_and_dst() {
        let berlin = parse_timezone("Europe/Berlin").unwrap();
        let now = t("2026-01-01T00:00:00Z");
        // 09:00 Berlin is 08:00 UTC in winter, 07:00 UTC in summer.
        let s = Schedule::parse("0 9 * * *", berlin, now).unwrap();
        assert_eq!(
            s.next_after(t("2026-01-10T12:00:00Z")),
            Some(t("2026-01-11T08:00:00Z"))
        );
        assert_eq!(
            s.next_after(t("2026-07-10T12:00:00Z")),
            Some(t("2026-07-11T07:00:00Z"))
        );
        // Spring forward (2026-03-29, 02:00 → 03:00): 02:30 does not exist; it runs late
        // by the skip (03:30 CEST = 01:30 UTC), once.
        let s = Schedule::parse("30 2 * * *", berlin, now).unwrap();
        let a = s.next_after(t("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(a, t("2026-03-29T01:30:00Z"));
        assert_eq!(s.next_after(a), Some(t("2026-03-30T00:30:00Z")));
        // Fall back (2026-10-25, 03:00 → 02:00): 02:30 happens twice; it runs once, at the
        // first (CEST, 00:30 UTC).
        let a = s.next_after(t("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(a, t("2026-10-25T00:30:00Z"));
        let b = s.next_after(a).unwrap();
        assert_eq!(
            b,
            t("2026-10-26T01:30:00Z"),
            "not again at 01:30 UTC the same day"
        );
        // Asked from inside the repeated hour (02:10 CET), the next is tomorrow's.
        assert_eq!(
            s.next_after(t("2026-10-25T01:10:00Z")),
            Some(t("2026-10-26T01:30:00Z"))
        );
        // ISO days are calendar days in the timezone: 09:00 local every day across the change.
        let s = Schedule::parse("R/2026-03-28T09:00:00+01:00/P1D", berlin, now).unwrap();
        assert_eq!(
            s.next_after(t("2026-03-28T09:00:00Z")),
            Some(t("2026-03-29T07:00:00Z"))
        );
        // … while PT24H is exact.
        let s = Schedule::parse("R/2026-03-28T09:00:00+01:00/PT24H", berlin, now).unwrap();
        assert_eq!(
            s.next_after(t("2026-03-28T09:00:00Z")),
            Some(t("2026-03-29T08:00:00Z"))
        );
    }

    #[test]
    fn due_runs_within_epsilon_and_skips_the_rest() {
        let s = utc("* * * * *", "2026-01-01T00:00:00Z");
        let eps = StdDuration::from_secs(30);
        // On time.
        let d = due(
            &s,
            t("2026-01-01T00:01:00Z"),
            t("2026-01-01T00:01:00.2Z"),
            eps,
        );
        assert_eq!(d.run, Some(t("2026-01-01T00:01:00Z")));
        assert_eq!(d.skipped, None);
        assert_eq!(d.next, Some(t("2026-01-01T00:02:00Z")));
        // Late by 20 s: still within epsilon.
        let d = due(
            &s,
            t("2026-01-01T00:01:00Z"),
            t("2026-01-01T00:01:20Z"),
            eps,
        );
        assert_eq!(d.run, Some(t("2026-01-01T00:01:00Z")));
        // Late by 40 s: skipped.
        let d = due(
            &s,
            t("2026-01-01T00:01:00Z"),
            t("2026-01-01T00:01:40Z"),
            eps,
        );
        assert_eq!(d.run, None);
        assert_eq!(
            d.skipped,
            Some((t("2026-01-01T00:01:00Z"), t("2026-01-01T00:01:00Z"), 1))
        );
        assert_eq!(d.next, Some(t("2026-01-01T00:02:00Z")));
        // Down from 00:01 to 00:05:10: four missed, the 00:05 one runs.
        let d = due(
            &s,
            t("2026-01-01T00:01:00Z"),
            t("2026-01-01T00:05:10Z"),
            eps,
        );
        assert_eq!(d.run, Some(t("2026-01-01T00:05:00Z")));
        assert_eq!(
            d.skipped,
            Some((t("2026-01-01T00:01:00Z"), t("2026-01-01T00:04:00Z"), 4))
        );
        // Down for a day at one run a second: counting stops, the last one runs.
        let s = utc("* * * * * *", "2026-01-01T00:00:00Z");
        let d = due(
            &s,
            t("2026-01-01T00:00:00Z"),
            t("2026-01-02T00:00:00Z"),
            eps,
        );
        assert_eq!(d.run, Some(t("2026-01-02T00:00:00Z")));
        assert!(d.skipped.unwrap().2 >= MAX_COUNTED - 1);
        assert_eq!(d.next, Some(t("2026-01-02T00:00:01Z")));
    }

    /// 10,000 schedules: the next run of every one. Printed, not asserted (`cargo test -p
    /// drover-scheduler --release -- --ignored --nocapture bench_next_run`).
    #[test]
    #[ignore]
    fn bench_next_run() {
        let now = t("2026-01-01T00:00:00Z");
        let berlin = parse_timezone("Europe/Berlin").unwrap();
        let schedules: Vec<Schedule> = (0..10_000)
            .map(|i| match i % 4 {
                0 => Schedule::parse(&format!("{} * * * *", i % 60), Tz::UTC, now).unwrap(),
                1 => Schedule::parse(&format!("*/{} * * * * *", 1 + i % 30), berlin, now).unwrap(),
                2 => Schedule::parse(&format!("R//PT{}S", 1 + i % 3600), Tz::UTC, now).unwrap(),
                _ => Schedule::parse("R/2025-01-01T03:00:00Z/P1D", berlin, now).unwrap(),
            })
            .collect();
        let mut times = Vec::new();
        for round in 0..5 {
            let at = now + Duration::seconds(round * 3600 + 17);
            let started = std::time::Instant::now();
            let n = schedules.iter().filter_map(|s| s.next_after(at)).count();
            times.push(started.elapsed());
            assert_eq!(n, 10_000);
        }
        times.sort();
        println!(
            "next run of 10,000 schedules (cron UTC, cron Berlin with seconds, ISO PTnS, ISO P1D Berlin): median {:.2} ms, min {:.2} ms, max {:.2} ms",
            times[2].as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            times[4].as_secs_f64() * 1e3
        );
    }
}
