//! The viewer's pages.

pub mod monitor;
pub mod search;
pub mod trace;
