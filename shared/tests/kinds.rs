//! Every JSON/YAML `kind` is written out in the code and listed in shared/docs/output.md, the
//! public schema's description: a result printed with a kind the document does not name fails.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read a source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(&path).expect("read a source file"));
        }
    }
}

#[test]
fn every_kind_is_written_out_and_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = Vec::new();
    rust_files(&root.join("src"), &mut sources);
    let doc = std::fs::read_to_string(root.join("docs/output.md")).expect("read output.md");
    let (mut impls, mut kinds) = (0, Vec::new());
    for text in &sources {
        impls += text.matches("impl Print for ").count();
        for part in text.split("fn kind(&self) -> &'static str {").skip(1) {
            let literal = part.trim_start().strip_prefix('"').and_then(|r| r.split('"').next());
            kinds.push(literal.expect("a kind is a string literal").to_string());
        }
    }
    assert!(impls >= 19, "found {impls} results printed");
    assert_eq!(kinds.len(), impls, "every `impl Print for` writes its kind out: {kinds:?}");
    let missing: Vec<&String> = kinds.iter().filter(|k| !doc.contains(&format!("`{k}`"))).collect();
    assert!(missing.is_empty(), "kinds not listed in shared/docs/output.md: {missing:?}");
    let mut unique = kinds.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), kinds.len(), "two results share a kind: {kinds:?}");
}
