//! The agent (placeholder while it is written).
