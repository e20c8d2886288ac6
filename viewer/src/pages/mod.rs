//! The viewer's pages.

pub mod sampling;
pub mod search;
pub mod trace;
