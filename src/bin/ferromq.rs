//! The `ferromq` command-line tool.

fn main() {
    eprintln!("ferromq {}", env!("CARGO_PKG_VERSION"));
}
