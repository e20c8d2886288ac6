//! The viewer's pages.

pub mod compare;
pub mod dependencies;
pub mod search;
pub mod trace;
