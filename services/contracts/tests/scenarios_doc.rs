//! `docs/scenarios.md` is generated from the registry: this fails when the two drift. Regenerate the
//! tables with `cargo run -q -p contracts --example scenarios` and paste them below the page's intro.

#[test]
fn the_scenarios_page_holds_the_registry_as_generated() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/scenarios.md");
    let page = std::fs::read_to_string(path).expect("docs/scenarios.md");
    let generated = contracts::scenario::registry_markdown();
    assert!(
        page.contains(generated.trim()),
        "docs/scenarios.md is out of date: regenerate it with `cargo run -q -p contracts --example scenarios`"
    );
}
