//! The viewer's pages.

pub mod compare;
pub mod dependencies;
pub mod flags;
pub mod monitor;
pub mod sampling;
pub mod search;
pub mod trace;
