//! The `ferrite` command-line tool.
fn main() {}
