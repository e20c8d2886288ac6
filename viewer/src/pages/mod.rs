//! The viewer's pages.

pub mod dependencies;
pub mod search;
pub mod trace;
