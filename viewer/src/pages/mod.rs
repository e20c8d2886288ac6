//! The viewer's pages.

pub mod compare;
pub mod search;
pub mod trace;
