//! The query side: search newest first with stable cursors, histogram by level, context around
//! a line, top values of a field, and the "newer than" reads the live tail is built on.
use std::{collections::BTreeMap, ops::Bound, sync::Arc, time::Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value as Json;
use tantivy::{
    aggregation::{
        agg_req::Aggregations, AggContextParams, AggregationCollector, AggregationLimitsGuard,
    },
    collector::{Collector, Count, SegmentCollector, TopDocs},
    columnar::{Column, ColumnIndex},
    query::{
        AllQuery, BooleanQuery, EnableScoring, Occur, Query, QueryParser, RangeQuery, TermQuery,
    },
    schema::{IndexRecordOption, Value},
    snippet::SnippetGenerator,
    DateTime as TDateTime, DocAddress, DocId, Order, Score, SegmentOrdinal, SegmentReader,
    TantivyDocument, Term,
};

use crate::{
    index::{Level, LogFields},
    store::{LogStore, Partition},
    SearchError,
};

/// The position after the last hit of a page: `<ts_ns>-<uid hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// The hit's timestamp.
    pub ts_ns: i64,
    /// The hit's unique key.
    pub uid: u64,
}

impl Cursor {
    /// Parses the text form.
    pub fn parse(s: &str) -> Result<Self, SearchError> {
        let bad = || {
            SearchError::BadRequest(format!(
                "invalid cursor {s:?}: pass back the next_cursor of a previous page"
            ))
        };
        let (ts, uid) = s.split_once('-').ok_or_else(bad)?;
        Ok(Self {
            ts_ns: ts.parse().map_err(|_| bad())?,
            uid: u64::from_str_radix(uid, 16).map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{:x}", self.ts_ns, self.uid)
    }
}

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Query text (Tantivy/Lucene syntax); empty or `*` matches everything.
    pub q: String,
    /// Lines at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Lines at or before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Filters: each a list of accepted values (empty: any).
    pub app: Vec<String>,
    /// Hosts.
    pub host: Vec<String>,
    /// Levels (`none` for lines without a level).
    pub level: Vec<String>,
    /// `stdout` / `stderr`.
    pub stream: Vec<String>,
    /// Container IDs.
    pub container: Vec<String>,
    /// Page size (1–1000, default 100).
    pub limit: usize,
    /// Continue after this position.
    pub cursor: Option<Cursor>,
    /// Add highlighted snippets.
    pub snippets: bool,
    /// How far `total` counts exactly.
    pub track_total: TrackTotal,
}

/// How far a search counts its matches exactly (Elasticsearch's `track_total_hits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackTotal {
    /// Count every match (every segment of the range is searched).
    Exact,
    /// Count exactly up to this many; past it `total` is a lower bound (`total_relation`
    /// `gte`), and segments that can neither add a newer line to the page nor are needed
    /// for the count are skipped.
    UpTo(u64),
}

/// The default of [`TrackTotal`]: like Elasticsearch, exact up to 10,000 matches.
pub const TRACK_TOTAL_DEFAULT: u64 = 10_000;

impl Default for TrackTotal {
    fn default() -> Self {
        TrackTotal::UpTo(TRACK_TOTAL_DEFAULT)
    }
}

/// One log line found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    /// RFC 3339 with nanoseconds.
    pub ts: String,
    /// Nanoseconds since the epoch.
    pub ts_ns: i64,
    /// App ID.
    pub app: String,
    /// Host.
    pub host: String,
    /// Node, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Task, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Group, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Container ID.
    pub container: String,
    /// Container name.
    pub container_name: String,
    /// Image.
    pub image: String,
    /// stdout / stderr.
    pub stream: String,
    /// Level, if the line has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// Per-container sequence number.
    pub seq: u64,
    /// The line.
    pub line: String,
    /// Parsed fields.
    pub fields: Json,
    /// The line with matches in `<b>…</b>` (HTML-escaped), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
    /// Cursor of this hit (pass as `cursor` to continue after it).
    pub cursor: String,
}

/// A page of results.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    /// How many lines match in the time range (all pages); a lower bound when
    /// `total_relation` is `gte` (see [`TrackTotal`]).
    pub total: u64,
    /// `eq`: `total` is exact; `gte`: at least `total`.
    pub total_relation: &'static str,
    /// This page, newest first.
    pub hits: Vec<Hit>,
    /// Cursor for the next page, when there may be one.
    pub next_cursor: Option<String>,
    /// Partitions (days) searched.
    pub partitions: usize,
    /// Time taken, milliseconds.
    pub took_ms: f64,
}

/// Counts per time bucket, split by level.
#[derive(Debug, Clone, Serialize)]
pub struct Histogram {
    /// Start of the first bucket.
    pub from: String,
    /// End of the last bucket.
    pub to: String,
    /// Bucket width, milliseconds.
    pub interval_ms: i64,
    /// The buckets, oldest first.
    pub buckets: Vec<Bucket>,
    /// Sum of all buckets.
    pub total: u64,
    /// Time taken, milliseconds.
    pub took_ms: f64,
}

/// One bucket.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    /// Bucket start, RFC 3339.
    pub ts: String,
    /// Bucket start, ms since the epoch.
    pub ts_ms: i64,
    /// Lines in the bucket.
    pub total: u64,
    /// Lines per level (`none`: no level); levels with 0 are left out.
    pub levels: BTreeMap<&'static str, u64>,
}

/// Top values of a field.
#[derive(Debug, Clone, Serialize)]
pub struct FieldValues {
    /// The field.
    pub field: String,
    /// Values, most frequent first.
    pub values: Vec<FieldValue>,
    /// Matching lines that have the field.
    pub total: u64,
}

/// One value and how often it appears.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FieldValue {
    /// The value as text.
    pub value: String,
    /// Lines with it.
    pub count: u64,
}

/// Searches a [`LogStore`].
#[derive(Debug, Clone)]
pub struct Search {
    store: Arc<LogStore>,
}

const MAX_LIMIT: usize = 1000;

impl Search {
    /// Searches this store.
    pub fn new(store: Arc<LogStore>) -> Self {
        Self { store }
    }

    /// The store.
    pub fn store(&self) -> &Arc<LogStore> {
        &self.store
    }

    fn fields(&self) -> &LogFields {
        self.store.fields()
    }

    /// Builds the Tantivy query for a request (query text, filters, time range) on a partition.
    fn build_query(
        &self,
        part: &Partition,
        req: &SearchRequest,
        upper: Option<DateTime<Utc>>,
    ) -> Result<Box<dyn Query>, SearchError> {
        let f = self.fields();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let text = req.q.trim();
        if !text.is_empty() && text != "*" {
            clauses.push((Occur::Must, parse_query(part, f, text)?));
        }
        for (field, values) in [
            (f.app, &req.app),
            (f.host, &req.host),
            (f.stream, &req.stream),
            (f.container, &req.container),
        ] {
            if let Some(q) = any_of(field, values) {
                clauses.push((Occur::Must, q));
            }
        }
        if !req.level.is_empty() {
            let mut levels: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for l in &req.level {
                if l == "none" {
                    // No level: level_code 0.
                    levels.push((
                        Occur::Should,
                        Box::new(RangeQuery::new(
                            Bound::Included(Term::from_field_u64(f.level_code, 0)),
                            Bound::Included(Term::from_field_u64(f.level_code, 0)),
                        )),
                    ));
                } else {
                    let level = Level::parse(l).ok_or_else(|| {
                        SearchError::BadRequest(format!(
                            "unknown level {l:?}: use trace, debug, info, warn, error, fatal or none"
                        ))
                    })?;
                    levels.push((
                        Occur::Should,
                        Box::new(TermQuery::new(
                            Term::from_field_text(f.level, level.as_str()),
                            IndexRecordOption::Basic,
                        )),
                    ));
                }
            }
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(levels))));
        }
        let to = match (req.to, upper) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if req.from.is_some() || to.is_some() {
            let bound = |t: Option<DateTime<Utc>>| match t {
                Some(t) => Bound::Included(Term::from_field_date(f.ts, to_tantivy(t))),
                None => Bound::Unbounded,
            };
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(bound(req.from), bound(to))),
            ));
        }
        Ok(match clauses.len() {
            0 => Box::new(AllQuery),
            _ => Box::new(BooleanQuery::new(clauses)),
        })
    }

    /// One page of results, newest first.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResult, SearchError> {
        let started = Instant::now();
        let limit = match req.limit {
            0 => 100,
            n => n.min(MAX_LIMIT),
        };
        let upper = req.cursor.map(|c| from_ns(c.ts_ns));
        let to = match (req.to, upper) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let parts = self.store.partitions_between(req.from, req.to);
        let cap = match req.track_total {
            TrackTotal::Exact => u64::MAX,
            TrackTotal::UpTo(n) => n,
        };
        let mut hits = Vec::new();
        let mut total = 0u64;
        let mut exact = true;
        let cursor = req.cursor;
        // Partitions are days, newest first; within one, segments newest first (by their
        // newest line), so the page fills from the first segments and the rest are only
        // counted — or skipped once the count reached `cap`.
        for part in &parts {
            let after_cursor = to.is_none_or(|t| part.day <= t.date_naive());
            let want = if after_cursor { limit - hits.len() } else { 0 };
            if want == 0 && total >= cap {
                exact = false;
                break;
            }
            let searcher = part.reader.searcher();
            let scoring = EnableScoring::disabled_from_searcher(&searcher);
            // The total counts every match in the range, not only after the cursor.
            let counted = self.build_query(part, req, None)?;
            let counted_w = counted.weight(scoring)?;
            let top_w = match upper {
                Some(_) => Some(self.build_query(part, req, upper)?.weight(scoring)?),
                None => None,
            };
            let mut segments: Vec<(u32, &SegmentReader, i64)> = searcher
                .segment_readers()
                .iter()
                .enumerate()
                .map(|(ord, seg)| {
                    let newest = sort_columns(seg)
                        .map(|(ts, _)| ts.max_value().into_timestamp_nanos())
                        .unwrap_or(i64::MAX);
                    (ord as u32, seg, newest)
                })
                .collect();
            segments.sort_by_key(|s| std::cmp::Reverse(s.2));
            let collector = top_collector(want, cursor);
            let mut top: Vec<((i64, u64), DocAddress)> = Vec::new();
            for (ord, seg, newest) in segments {
                // Could this segment put a line on the page? Only if the page is not full or
                // its newest line is at least as new as the page's oldest.
                let useful = want > 0
                    && (top.len() < want || top.last().is_some_and(|(k, _)| newest >= k.0));
                if !useful {
                    if total >= cap {
                        exact = false;
                        continue;
                    }
                    total += counted_w.count(seg)? as u64;
                    continue;
                }
                let fruit = match &top_w {
                    // No cursor: one pass counts and collects.
                    None => {
                        let (n, fruit) = (Count, top_collector(want, cursor)).collect_segment(
                            &*counted_w,
                            ord,
                            seg,
                        )?;
                        total += n as u64;
                        collector.merge_fruits(vec![fruit])?
                    }
                    Some(w) => {
                        total += counted_w.count(seg)? as u64;
                        let fruit = collector.collect_segment(&**w, ord, seg)?;
                        collector.merge_fruits(vec![fruit])?
                    }
                };
                top.extend(fruit.into_iter().filter_map(|(k, a)| Some((k?, a))));
                top.sort_unstable_by_key(|b| std::cmp::Reverse(b.0));
                top.truncate(want);
            }
            if top.is_empty() {
                continue;
            }
            let snippets = if req.snippets && !req.q.trim().is_empty() && req.q.trim() != "*" {
                let parsed = parse_query(part, self.fields(), req.q.trim())?;
                let mut g = SnippetGenerator::create(&searcher, &*parsed, self.fields().message)?;
                g.set_max_num_chars(400);
                Some(g)
            } else {
                None
            };
            for (_, addr) in top {
                let mut hit = self.hit(&searcher, addr)?;
                if let Some(g) = &snippets {
                    let s = g.snippet(&hit.line);
                    if !s.is_empty() {
                        hit.snippet = Some(s.to_html());
                    }
                }
                hits.push(hit);
            }
        }
        let next_cursor = (hits.len() == limit)
            .then(|| hits.last().map(|h| h.cursor.clone()))
            .flatten();
        Ok(SearchResult {
            total,
            total_relation: if exact { "eq" } else { "gte" },
            hits,
            next_cursor,
            partitions: parts.len(),
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    fn hit(&self, searcher: &tantivy::Searcher, addr: DocAddress) -> Result<Hit, SearchError> {
        let f = self.fields();
        let doc: TantivyDocument = searcher.doc(addr)?;
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let ts = doc
            .get_first(f.ts)
            .and_then(|v| v.as_datetime())
            .map(|d| d.into_timestamp_nanos())
            .unwrap_or_default();
        let container = text(f.container).unwrap_or_default();
        let seq = doc
            .get_first(f.seq)
            .and_then(|v| v.as_u64())
            .unwrap_or_default();
        let line = text(f.line).unwrap_or_default();
        // The parsed fields are not stored: parse the line again (the same parse as when it
        // was indexed), then add what rules added.
        let mut fields = crate::parse::parse_line(&line).fields;
        if let Some(Json::Object(extra)) = doc.get_first(f.extra).map(|v| {
            serde_json::to_value(tantivy::schema::OwnedValue::from(v)).unwrap_or(Json::Null)
        }) {
            fields.extend(extra);
        }
        let fields = Json::Object(fields);
        Ok(Hit {
            ts: from_ns(ts).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ts_ns: ts,
            app: text(f.app).unwrap_or_default(),
            host: text(f.host).unwrap_or_default(),
            node: text(f.node),
            task: text(f.task),
            group: text(f.group),
            cursor: Cursor {
                ts_ns: ts,
                uid: crate::index::uid(&container, seq),
            }
            .to_string(),
            container,
            container_name: text(f.container_name).unwrap_or_default(),
            image: text(f.image).unwrap_or_default(),
            stream: text(f.stream).unwrap_or_default(),
            level: text(f.level),
            seq,
            line,
            fields,
            snippet: None,
        })
    }

    /// Counts per bucket between `from` and `to` (default: the last 15 minutes), split by level.
    /// `buckets` is the most buckets wanted; the width is rounded to a readable step.
    pub fn histogram(
        &self,
        req: &SearchRequest,
        buckets: usize,
        now: DateTime<Utc>,
    ) -> Result<Histogram, SearchError> {
        let started = Instant::now();
        let to = req.to.unwrap_or(now);
        let from = req.from.unwrap_or(to - chrono::Duration::minutes(15));
        let interval_ms = nice_interval(
            (to - from).num_milliseconds().max(1),
            buckets.clamp(1, 1000),
        );
        let start_ms = from.timestamp_millis().div_euclid(interval_ms) * interval_ms;
        let n = usize::try_from((to.timestamp_millis() - start_ms) / interval_ms + 1).unwrap_or(1);
        let mut counts = vec![[0u64; 7]; n];
        let mut ranged = req.clone();
        ranged.from = Some(from);
        ranged.to = Some(to);
        let collector = LevelHistogram {
            start_ns: start_ms * 1_000_000,
            width_ns: interval_ms * 1_000_000,
            n,
        };
        for part in self.store.partitions_between(Some(from), Some(to)) {
            let query = self.build_query(&part, &ranged, None)?;
            let part_counts = part.reader.searcher().search(&*query, &collector)?;
            for (acc, c) in counts.iter_mut().zip(part_counts) {
                for l in 0..7 {
                    acc[l] += c[l];
                }
            }
        }
        let mut total = 0;
        let buckets = counts
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let ts_ms = start_ms + i as i64 * interval_ms;
                let mut levels = BTreeMap::new();
                for (code, n) in c.iter().enumerate() {
                    if *n > 0 {
                        let name = Level::from_code(code as u64).map_or("none", Level::as_str);
                        levels.insert(name, *n);
                    }
                }
                let sum: u64 = c.iter().sum();
                total += sum;
                Bucket {
                    ts: from_ms(ts_ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    ts_ms,
                    total: sum,
                    levels,
                }
            })
            .collect();
        Ok(Histogram {
            from: from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            to: to.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            interval_ms,
            buckets,
            total,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// The lines of `container` around sequence number `seq`: `before` lines before it, the line
    /// itself, and `after` lines after it, oldest first.
    pub fn context(
        &self,
        container: &str,
        seq: u64,
        before: u64,
        after: u64,
    ) -> Result<Vec<Hit>, SearchError> {
        let f = self.fields();
        let (before, after) = (before.min(500), after.min(500));
        let lo = seq.saturating_sub(before);
        let hi = seq.saturating_add(after);
        let query = BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.container, container),
                    IndexRecordOption::Basic,
                )) as Box<dyn Query>,
            ),
            (
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_u64(f.seq, lo)),
                    Bound::Included(Term::from_field_u64(f.seq, hi)),
                )),
            ),
        ]);
        let mut hits = Vec::new();
        for part in self.store.partitions() {
            let searcher = part.reader.searcher();
            let top = searcher.search(
                &query,
                &TopDocs::with_limit((hi - lo + 1) as usize)
                    .order_by_fast_field::<u64>("seq", Order::Asc),
            )?;
            for (_, addr) in top {
                hits.push(self.hit(&searcher, addr)?);
            }
        }
        hits.sort_by_key(|h| h.seq);
        hits.dedup_by_key(|h| h.seq);
        Ok(hits)
    }

    /// The most frequent values of `field` among the lines matching `req`: a keyword field
    /// (`app`, `host`, `level`, …) or a parsed one (`status` or `fields.status`).
    pub fn field_values(
        &self,
        req: &SearchRequest,
        field: &str,
        size: usize,
    ) -> Result<FieldValues, SearchError> {
        let f = self.fields();
        let path = if crate::index::KEYWORD_FIELDS.contains(&field) || field.starts_with("fields.")
        {
            field.to_string()
        } else if f.schema.get_field(field).is_ok() {
            return Err(SearchError::BadRequest(format!(
                "field {field:?} has no top values: use one of {} or a parsed field such as status",
                crate::index::KEYWORD_FIELDS.join(", ")
            )));
        } else {
            format!("fields.{field}")
        };
        let size = size.clamp(1, 100);
        let aggs: Aggregations = serde_json::from_value(serde_json::json!({
            "top": { "terms": { "field": path, "size": size * 2 } }
        }))
        .map_err(|e| SearchError::BadRequest(format!("field {field:?}: {e}")))?;
        let mut merged: BTreeMap<String, u64> = BTreeMap::new();
        let mut total = 0;
        for part in self.store.partitions_between(req.from, req.to) {
            let query = self.build_query(&part, req, None)?;
            let collector = AggregationCollector::from_aggs(
                aggs.clone(),
                AggContextParams::new(
                    AggregationLimitsGuard::default(),
                    part.index.tokenizers().clone(),
                ),
            );
            let res = part.reader.searcher().search(&*query, &collector)?;
            let json = serde_json::to_value(&res)?;
            let top = &json["top"];
            for b in top["buckets"].as_array().into_iter().flatten() {
                let key = match &b["key"] {
                    Json::String(s) => s.clone(),
                    Json::Number(n) => match n.as_f64() {
                        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
                        _ => n.to_string(),
                    },
                    other => other.to_string(),
                };
                let count = b["doc_count"].as_u64().unwrap_or(0);
                total += count;
                *merged.entry(key).or_default() += count;
            }
            total += top["sum_other_doc_count"].as_u64().unwrap_or(0);
        }
        let mut values: Vec<FieldValue> = merged
            .into_iter()
            .map(|(value, count)| FieldValue { value, count })
            .collect();
        values.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
        values.truncate(size);
        Ok(FieldValues {
            field: field.to_string(),
            values,
            total,
        })
    }

    /// Lines newer than `after` (exclusive) that match `req`, oldest first, at most `limit`:
    /// what a live tail polls for.
    pub fn newer_than(
        &self,
        req: &SearchRequest,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        let mut r = req.clone();
        r.from = Some(from_ns(after.ts_ns));
        r.cursor = None;
        r.limit = limit.min(MAX_LIMIT);
        r.snippets = false;
        let page = self.search(&r)?;
        let mut hits: Vec<Hit> = page
            .hits
            .into_iter()
            .filter(|h| Cursor::parse(&h.cursor).is_ok_and(|c| c > after))
            .collect();
        hits.reverse();
        Ok(hits)
    }
}

impl Search {
    /// Every line's (container, seq) in the index, in no particular order: for checks that
    /// nothing is missing or doubled (tests, `drover logs verify`-like tools).
    pub fn scan_keys(&self) -> Result<Vec<(String, u64)>, SearchError> {
        let mut out = Vec::new();
        for part in self.store.partitions() {
            let searcher = part.reader.searcher();
            for seg in searcher.segment_readers() {
                let ff = seg.fast_fields();
                let containers = ff
                    .str("container")?
                    .ok_or_else(|| SearchError::Internal("no container column".into()))?;
                let seqs = ff.u64("seq")?;
                let mut name = String::new();
                for doc in seg.doc_ids_alive() {
                    let ord = containers.term_ords(doc).next().unwrap_or_default();
                    name.clear();
                    containers
                        .ord_to_str(ord, &mut name)
                        .map_err(|e| SearchError::Internal(e.to_string()))?;
                    out.push((name.clone(), seqs.first(doc).unwrap_or_default()));
                }
            }
        }
        Ok(out)
    }
}

type SortColumns = Option<(Column<TDateTime>, Column<u64>)>;

/// The newest `want` lines by (ts, uid), strictly before `cursor` when there is one.
fn top_collector(
    want: usize,
    cursor: Option<Cursor>,
) -> impl Collector<Fruit = Vec<(Option<(i64, u64)>, DocAddress)>> {
    TopDocs::with_limit(want.max(1)).order_by(move |seg: &SegmentReader| {
        let cols = sort_columns(seg);
        move |doc: DocId| -> Option<(i64, u64)> {
            let (ts, uid) = cols.as_ref()?;
            let key = (ts.first(doc)?.into_timestamp_nanos(), uid.first(doc)?);
            match cursor {
                Some(c) if key >= (c.ts_ns, c.uid) => None,
                _ => Some(key),
            }
        }
    })
}

fn sort_columns(seg: &SegmentReader) -> SortColumns {
    let ff = seg.fast_fields();
    Some((ff.date("ts").ok()?, ff.u64("uid").ok()?))
}

/// Turns unknown field names into paths of the parsed `fields` JSON (`status:502` →
/// `fields.status:502`), then parses with Tantivy's query parser (AND between terms).
fn parse_query(part: &Partition, f: &LogFields, text: &str) -> Result<Box<dyn Query>, SearchError> {
    parse_query_for(&part.index, f, text)
}

/// Checks that a query parses, without an index on disk: what alert rules call at load, so a
/// broken query is refused before it is evaluated.
pub fn check_query(text: &str) -> Result<(), SearchError> {
    let text = text.trim();
    if text.is_empty() || text == "*" {
        return Ok(());
    }
    let f = LogFields::new();
    let index = tantivy::Index::create_in_ram(f.schema.clone());
    parse_query_for(&index, &f, text).map(|_| ())
}

fn parse_query_for(
    index: &tantivy::Index,
    f: &LogFields,
    text: &str,
) -> Result<Box<dyn Query>, SearchError> {
    let rewritten = rewrite_fields(text, |name| f.schema.get_field(name).is_ok());
    let mut parser = QueryParser::for_index(index, vec![f.message]);
    parser.set_conjunction_by_default();
    parser.allow_regexes();
    let parsed = match parser.parse_query(&rewritten) {
        // Only exclusions (`-stream:stdout`, `NOT healthz`): everything but those, as
        // Lucene users expect, instead of Tantivy's refusal.
        Err(tantivy::query::QueryParserError::AllButQueryForbidden) => {
            parser.parse_query(&format!("* {rewritten}"))
        }
        other => other,
    };
    parsed.map_err(|e| {
        SearchError::Query(format!(
            "{e} in {text:?}; examples: timeout, \"connection refused\", level:error AND app:shop, status:[500 TO 599], NOT healthz"
        ))
    })
}

/// Prefixes `fields.` to `name:` where `name` is not a schema field. Quoted text is left alone.
pub fn rewrite_fields(text: &str, known: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut in_quotes = false;
    let mut at_token_start = true;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            in_quotes = !in_quotes;
        }
        // Lucene's `NOT x` is Tantivy's `-x`.
        if !in_quotes
            && at_token_start
            && chars[i..].starts_with(&['N', 'O', 'T'])
            && chars.get(i + 3).is_some_and(|c| c.is_whitespace())
        {
            out.push('-');
            i += 3;
            while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                i += 1;
            }
            continue;
        }
        if !in_quotes && at_token_start && (c.is_ascii_alphabetic() || c == '_') {
            let mut j = i;
            while j < chars.len()
                && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '.')
            {
                j += 1;
            }
            // Lucene's prefix `pay*` is a regex on the (lowercased) message terms.
            if chars.get(j) == Some(&'*')
                && chars
                    .get(j + 1)
                    .is_none_or(|c| c.is_whitespace() || *c == ')')
            {
                let word: String = chars[i..j].iter().collect::<String>().to_lowercase();
                out.push_str("message:/");
                out.push_str(&word.replace('.', "\\."));
                out.push_str(".*/");
                i = j + 1;
                at_token_start = false;
                continue;
            }
            if j < chars.len() && chars[j] == ':' {
                let name: String = chars[i..j].iter().collect();
                let root = name.split('.').next().unwrap_or("");
                if !known(root) {
                    out.push_str("fields.");
                }
                out.push_str(&name);
                i = j;
                at_token_start = false;
                // `ts` and `seq` are fast columns without terms: a single value is the range
                // from it to itself.
                if known(root)
                    && crate::index::FAST_ONLY_FIELDS.contains(&name.as_str())
                    && chars
                        .get(j + 1)
                        .is_some_and(|c| !matches!(c, '[' | '{' | '>' | '<' | '('))
                {
                    let mut k = j + 1;
                    let quoted = chars[k] == '"';
                    if quoted {
                        k += 1;
                        while k < chars.len() && chars[k] != '"' {
                            k += 1;
                        }
                    } else {
                        while k < chars.len() && !chars[k].is_whitespace() && chars[k] != ')' {
                            k += 1;
                        }
                    }
                    let start = j + 1 + usize::from(quoted);
                    let value: String = chars[start..k.min(chars.len())].iter().collect();
                    out.push_str(&format!(":[{value} TO {value}]"));
                    i = if quoted { (k + 1).min(chars.len()) } else { k };
                }
                continue;
            }
        }
        out.push(c);
        at_token_start = !in_quotes && (c.is_whitespace() || matches!(c, '(' | '+' | '-' | '!'));
        i += 1;
    }
    out
}

fn any_of(field: tantivy::schema::Field, values: &[String]) -> Option<Box<dyn Query>> {
    if values.is_empty() {
        return None;
    }
    let clauses = values
        .iter()
        .map(|v| {
            (
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_text(field, v),
                    IndexRecordOption::Basic,
                )) as Box<dyn Query>,
            )
        })
        .collect();
    Some(Box::new(BooleanQuery::new(clauses)))
}

fn to_tantivy(t: DateTime<Utc>) -> TDateTime {
    TDateTime::from_timestamp_nanos(t.timestamp_nanos_opt().unwrap_or(i64::MAX))
}

fn from_ns(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The smallest readable step that gives at most `max_buckets` buckets over `span_ms`.
pub fn nice_interval(span_ms: i64, max_buckets: usize) -> i64 {
    const STEPS: [i64; 17] = [
        1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
        1_800_000, 3_600_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
    ];
    let max = max_buckets.max(1) as i64;
    for s in STEPS {
        if span_ms / s < max {
            return s;
        }
    }
    let day = 86_400_000;
    (span_ms / max / day + 1) * day
}

/// Counts matches per (time bucket, level code) from the `ts` and `level_code` fast fields.
struct LevelHistogram {
    start_ns: i64,
    width_ns: i64,
    n: usize,
}

struct LevelHistogramSegment {
    ts: Option<Column<TDateTime>>,
    level: Option<Column<u64>>,
    start_ns: i64,
    width_ns: i64,
    counts: Vec<[u64; 7]>,
    ts_buf: Vec<TDateTime>,
    level_buf: Vec<u64>,
}

impl LevelHistogramSegment {
    #[inline]
    fn add(&mut self, ts_ns: i64, level: u64) {
        let delta = ts_ns - self.start_ns;
        if delta < 0 {
            return;
        }
        let bucket = (delta / self.width_ns) as usize;
        if let Some(c) = self.counts.get_mut(bucket) {
            c[level.min(6) as usize] += 1;
        }
    }
}

impl Collector for LevelHistogram {
    type Fruit = Vec<[u64; 7]>;
    type Child = LevelHistogramSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        seg: &SegmentReader,
    ) -> tantivy::Result<LevelHistogramSegment> {
        let ff = seg.fast_fields();
        Ok(LevelHistogramSegment {
            ts: ff.date("ts").ok(),
            level: ff.u64("level_code").ok(),
            start_ns: self.start_ns,
            width_ns: self.width_ns,
            counts: vec![[0; 7]; self.n],
            ts_buf: Vec::new(),
            level_buf: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<[u64; 7]>>) -> tantivy::Result<Vec<[u64; 7]>> {
        let mut acc = vec![[0; 7]; self.n];
        for f in fruits {
            for (a, c) in acc.iter_mut().zip(f) {
                for l in 0..7 {
                    a[l] += c[l];
                }
            }
        }
        Ok(acc)
    }
}

impl SegmentCollector for LevelHistogramSegment {
    type Fruit = Vec<[u64; 7]>;

    fn collect(&mut self, doc: DocId, _: Score) {
        let Some(ts) = self.ts.as_ref().and_then(|c| c.first(doc)) else {
            return;
        };
        let level = self.level.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
        self.add(ts.into_timestamp_nanos(), level);
    }

    /// Every log document has both columns, so they are dense: read a block of values at once
    /// instead of one virtual call per document and column.
    fn collect_block(&mut self, docs: &[DocId]) {
        let dense = |i: &ColumnIndex| matches!(i, ColumnIndex::Full);
        let (Some(ts), Some(level)) = (self.ts.clone(), self.level.clone()) else {
            for d in docs {
                self.collect(*d, 0.0);
            }
            return;
        };
        if !dense(&ts.index) || !dense(&level.index) {
            for d in docs {
                self.collect(*d, 0.0);
            }
            return;
        }
        let mut ts_buf = std::mem::take(&mut self.ts_buf);
        let mut level_buf = std::mem::take(&mut self.level_buf);
        ts_buf.resize(docs.len(), TDateTime::from_timestamp_nanos(0));
        level_buf.resize(docs.len(), 0);
        ts.values.get_vals(docs, &mut ts_buf);
        level.values.get_vals(docs, &mut level_buf);
        for (t, l) in ts_buf.iter().zip(&level_buf) {
            self.add(t.into_timestamp_nanos(), *l);
        }
        self.ts_buf = ts_buf;
        self.level_buf = level_buf;
    }

    fn harvest(self) -> Vec<[u64; 7]> {
        self.counts
    }
}
