//! The log search API's decoders (`/api/logs/search`, `/histogram`, `/fields`, `/tail`, and
//! Alertman's log rules): the query string into `Params` as axum's `Query` extractor does it,
//! `Params::request` (time range, lists, limit, cursor, track_total), then the query text
//! through `check_query` (field rewriting and Tantivy's query parser, as a search does
//! before it runs).
#![no_main]

use axum::{extract::Query, http::Uri};
use drover_search::{
    api::Params,
    query::{check_query, rewrite_fields, Cursor},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The query text alone (what a rule file or the CLI passes).
    let _ = check_query(text);
    let _ = rewrite_fields(text, |f| f == "app" || f == "level");
    let _ = Cursor::parse(text);
    // A whole query string.
    let Ok(uri) = format!("/api/logs/search?{text}").parse::<Uri>() else {
        return;
    };
    if let Ok(Query(params)) = Query::<Params>::try_from_uri(&uri) {
        if let Ok(req) = params.request() {
            let _ = check_query(&req.q);
        }
    }
});
