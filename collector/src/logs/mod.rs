//! Following a container's log stream.

pub mod frame;
pub mod multiline;
