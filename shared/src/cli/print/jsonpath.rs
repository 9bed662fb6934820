//! `-o jsonpath=TEMPLATE`, kubectl's syntax for the simple paths: literal text with `{…}`
//! expressions over the versioned JSON document. An expression is a path from the root
//! (`.` or `$`): `.field`, `['field']`, `[N]` (negative counts from the end), `[*]`, and the
//! filter `[?(@.path==VALUE)]` (also `!=`; VALUE a quoted string, a number, true or false). As
//! kubectl prints them: several results separated by a space, strings bare, anything else as
//! JSON; `\n` and `\t` in the literal text. `{range}`/`{end}` and recursive descent are not
//! supported and are refused.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    Filter { path: Vec<Step>, equal: bool, value: Value },
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Path(Vec<Step>),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Piece>);

fn parse_path(p: &str) -> Result<Vec<Step>, String> {
    let p = p.trim();
    let mut rest = p.strip_prefix('$').unwrap_or(p);
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if rest.starts_with("..") {
            return Err(format!("recursive descent (..) is not supported in {p:?}"));
        }
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = matching_bracket(r).ok_or_else(|| format!("unclosed [ in {p:?}"))?;
            let inner = r[..close].trim();
            rest = &r[close + 1..];
            if inner == "*" {
                steps.push(Step::All);
            } else if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
                let (lhs, rhs, equal) = match (f.split_once("!="), f.split_once("==")) {
                    (Some((l, r)), _) => (l, r, false),
                    (None, Some((l, r))) => (l, r, true),
                    _ => return Err(format!("filter {inner:?}: only == and != are supported")),
                };
                let lhs = lhs.trim().strip_prefix('@').ok_or_else(|| format!("filter {inner:?}: expected @.path"))?;
                let rhs = rhs.trim();
                let value = if let Some(s) = rhs.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    Value::String(s.to_string())
                } else if let Some(s) = rhs.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                    Value::String(s.to_string())
                } else {
                    serde_json::from_str(rhs).map_err(|_| format!("filter {inner:?}: {rhs} is not a value"))?
                };
                steps.push(Step::Filter { path: parse_path(lhs)?, equal, value });
            } else if let Some(q) = inner.strip_prefix('\'').and_then(|q| q.strip_suffix('\'')) {
                steps.push(Step::Field(q.to_string()));
            } else if let Ok(i) = inner.parse::<i64>() {
                steps.push(Step::Index(i));
            } else {
                return Err(format!("[{inner}] in {p:?}: expected an index, *, 'field' or ?(@.path==value)"));
            }
        } else {
            return Err(format!("{rest:?} in {p:?}: a path starts with . or ["));
        }
    }
    Ok(steps)
}

fn matching_bracket(s: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') if depth == 0 => return Some(i),
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    None
}

impl Template {
    /// Compiles `template`; the error says what is wrong with it.
    pub fn parse(template: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(unescape(&rest[..open])));
            }
            let close = rest[open..].find('}').ok_or_else(|| format!("unclosed {{ in {template:?}"))? + open;
            let expr = rest[open + 1..close].trim();
            if expr == "end" || expr.starts_with("range") {
                return Err("{range}/{end} is not supported: use -o json with jq for loops".into());
            }
            pieces.push(Piece::Path(parse_path(expr)?));
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(unescape(rest)));
        }
        Ok(Template(pieces))
    }

    /// The template applied to `doc`.
    pub fn render(&self, doc: &Value) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Path(steps) => {
                    let found = select(doc, steps);
                    let shown: Vec<String> = found
                        .iter()
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect();
                    out.push_str(&shown.join(" "));
                }
            }
        }
        out
    }
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}

fn select<'a>(v: &'a Value, steps: &[Step]) -> Vec<&'a Value> {
    let Some((first, rest)) = steps.split_first() else { return vec![v] };
    let next: Vec<&Value> = match first {
        Step::Field(f) => v.get(f).into_iter().collect(),
        Step::Index(i) => v
            .as_array()
            .and_then(|a| {
                let n = a.len() as i64;
                let i = if *i < 0 { n + i } else { *i };
                (0..n).contains(&i).then(|| &a[i as usize])
            })
            .into_iter()
            .collect(),
        Step::All => match v {
            Value::Array(a) => a.iter().collect(),
            Value::Object(o) => o.values().collect(),
            _ => Vec::new(),
        },
        Step::Filter { path, equal, value } => v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| {
                        let hit = select(x, path).first().is_some_and(|y| *y == value);
                        hit == *equal
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    next.into_iter().flat_map(|x| select(x, rest)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_json::json!({
            "kind": "HealthReport",
            "quorum": {"voters": 3, "can_lose": 1},
            "members": [{"name": "cp-1", "is_leader": false, "latency_ms": 1.5},
                        {"name": "cp-2", "is_leader": true, "latency_ms": 2.0},
                        {"name": "cp-3", "is_leader": false, "latency_ms": null}],
            "checks": [{"name": "quorum", "status": "ok"}, {"name": "disk", "status": "warn"}]
        })
    }

    fn r(t: &str) -> String {
        Template::parse(t).unwrap().render(&doc())
    }

    #[test]
    fn kubectls_simple_paths() {
        assert_eq!(r("{.kind}"), "HealthReport");
        assert_eq!(r("{.quorum.can_lose}"), "1");
        assert_eq!(r("{.members[*].name}"), "cp-1 cp-2 cp-3");
        assert_eq!(r("{.members[0].name}"), "cp-1");
        assert_eq!(r("{.members[-1].latency_ms}"), "null");
        assert_eq!(r("{$.members[1]['name']}"), "cp-2");
        assert_eq!(r("{.members[?(@.is_leader==true)].name}"), "cp-2");
        assert_eq!(r("{.checks[?(@.status!=\"ok\")].name}"), "disk");
        assert_eq!(r("leader={.members[?(@.is_leader==true)].name}\\n"), "leader=cp-2\n");
        assert_eq!(serde_json::from_str::<Value>(&r("{.quorum}")).unwrap(), doc()["quorum"]);
        assert_eq!(r("{.nothing}"), "");
    }

    #[test]
    fn what_is_not_supported_is_refused() {
        assert!(Template::parse("{range .members[*]}{.name}{end}").unwrap_err().contains("not supported"));
        assert!(Template::parse("{..name}").unwrap_err().contains("recursive"));
        assert!(Template::parse("{.members[").is_err());
        assert!(Template::parse("{.members[?(@.a>1)]}").unwrap_err().contains("== and !="));
    }
}
