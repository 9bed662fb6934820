//! A small JSON Schema checker for the suite's documented output schemas (shared/docs/*.schema.json):
//! `type` (one or a list; `integer` is a number without a fraction), `enum`, `required`,
//! `properties`, `items`, the one `pattern` the schemas use (16 hex digits), `$defs` with local
//! `$ref`s to them (`#/$defs/NAME`), and `if`/`then`/`else` (a document that meets `if` must meet
//! `then`, else `else`). Anything else in a schema is refused, so a schema never claims more
//! than is checked.

use serde_json::Value;

/// The schema file `shared/docs/NAME`.
pub fn load(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/docs").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        other => panic!("schema type {other} is not supported"),
    }
}

/// Every place `doc` breaks `schema`, as `path: why`.
pub fn violations(schema: &Value, doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, schema, doc, "$", &mut out);
    out
}

/// The schema a local `$ref` (`#/$defs/NAME`) names in `root`.
fn resolve<'a>(root: &'a Value, r: &str, path: &str) -> &'a Value {
    let name = r.strip_prefix("#/$defs/").unwrap_or_else(|| panic!("$ref {r} at {path} is not supported"));
    root.get("$defs").and_then(|d| d.get(name)).unwrap_or_else(|| panic!("$ref {r} at {path}: no such $defs entry"))
}

fn check(root: &Value, schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    let Some(s) = schema.as_object() else { return };
    for key in s.keys() {
        let known = [
            "$schema",
            "$id",
            "title",
            "description",
            "type",
            "enum",
            "required",
            "properties",
            "items",
            "pattern",
            "$defs",
            "$ref",
            "if",
            "then",
            "else",
        ];
        assert!(known.contains(&key.as_str()), "schema keyword {key} at {path} is not supported");
    }
    if let Some(r) = s.get("$ref").and_then(|r| r.as_str()) {
        check(root, resolve(root, r, path), v, path, out);
    }
    if let Some(cond) = s.get("if") {
        let mut unmet = Vec::new();
        check(root, cond, v, path, &mut unmet);
        let branch = if unmet.is_empty() { s.get("then") } else { s.get("else") };
        if let Some(b) = branch {
            check(root, b, v, path, out);
        }
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(x) => vec![x.as_str()],
            Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
            _ => panic!("bad type at {path}"),
        };
        if !types.iter().any(|t| type_ok(t, v)) {
            out.push(format!("{path}: {v} is not {}", types.join("|")));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(|e| e.as_array()) {
        if !e.contains(v) {
            out.push(format!("{path}: {v} is not one of {}", Value::Array(e.clone())));
        }
    }
    if let (Some(p), Some(x)) = (s.get("pattern").and_then(|p| p.as_str()), v.as_str()) {
        assert_eq!(p, "^[0-9a-f]{16}$", "pattern {p} at {path} is not supported");
        if !(x.len() == 16 && x.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())) {
            out.push(format!("{path}: {x:?} is not 16 lowercase hex digits"));
        }
    }
    if let (Some(req), Some(o)) = (s.get("required").and_then(|r| r.as_array()), v.as_object()) {
        for r in req.iter().filter_map(|r| r.as_str()) {
            if !o.contains_key(r) {
                out.push(format!("{path}: required field {r} missing"));
            }
        }
    }
    if let (Some(props), Some(o)) = (s.get("properties").and_then(|p| p.as_object()), v.as_object()) {
        for (k, sub) in props {
            if let Some(x) = o.get(k) {
                check(root, sub, x, &format!("{path}.{k}"), out);
            }
        }
    }
    if let (Some(items), Some(a)) = (s.get("items"), v.as_array()) {
        for (i, x) in a.iter().enumerate() {
            check(root, items, x, &format!("{path}[{i}]"), out);
        }
    }
}
