/// Why a message could not be read as a Drover record.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The bytes are not JSON, or a field has the wrong type or is missing.
    #[error("invalid record: {0}")]
    Json(#[source] serde_json::Error),
    /// The record has no `v` field.
    #[error("record has no \"v\" schema version field")]
    MissingVersion,
    /// The record's `v` is not a version this build reads.
    #[error("unsupported schema version v={0} (this build reads v={current})", current = crate::SCHEMA_VERSION)]
    UnsupportedVersion(String),
}

impl SchemaError {
    /// Every reason [`SchemaError::reason`] gives (metrics start each at 0, so dashboards
    /// and alerts see the series before the first bad message).
    pub const REASONS: [&'static str; 3] =
        ["invalid_json", "missing_version", "unsupported_version"];

    /// A short, stable reason label for metrics and dead-letter headers.
    pub fn reason(&self) -> &'static str {
        match self {
            SchemaError::Json(_) => "invalid_json",
            SchemaError::MissingVersion => "missing_version",
            SchemaError::UnsupportedVersion(_) => "unsupported_version",
        }
    }
}
