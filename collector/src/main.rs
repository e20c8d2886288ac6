//! The `collector` binary: thin wrapper over the library.
fn main() {}
