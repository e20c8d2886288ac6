//! Prints the scenario registry as Markdown: `cargo run -p contracts --example scenarios`.

fn main() {
    print!("{}", contracts::scenario::registry_markdown());
}
