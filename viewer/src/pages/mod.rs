//! The viewer's pages.

pub mod flags;
pub mod search;
pub mod trace;
