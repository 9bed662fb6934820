//! The README lists the whole catalogue of etcd log signatures
//! (`shared/data/etcd-log-signatures.json`): one table row per entry, with its id, severity and
//! WHAT as the data says them. An entry added to the data without its row fails here.

use std::path::Path;

#[test]
fn every_signature_has_its_readme_row() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = std::fs::read_to_string(root.join("data/etcd-log-signatures.json")).expect("read the catalogue");
    let readme = std::fs::read_to_string(root.join("../README.md")).expect("read the README");
    let doc: serde_json::Value = serde_json::from_str(&data).expect("the catalogue is JSON");
    let sigs = doc["signatures"].as_array().expect("signatures");
    assert!(sigs.len() >= 20, "{}", sigs.len());
    for s in sigs {
        let (id, severity, what) =
            (s["id"].as_str().unwrap_or(""), s["severity"].as_str().unwrap_or(""), s["what"].as_str().unwrap_or(""));
        let row = format!("| `{id}` | {severity} | {what} |");
        assert!(readme.contains(&row), "README lacks the catalogue row {row}");
    }
}
