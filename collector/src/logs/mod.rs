//! Following a container's log stream: [`frame`] parses Docker's entries and rejoins 16 KB
//! partial lines, [`multiline`] joins multi-line events, [`follow`] drives one container.

pub mod follow;
pub mod frame;
pub mod multiline;
