//! The viewer's pages.

pub mod search;
pub mod trace;
