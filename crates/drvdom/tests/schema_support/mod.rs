//! Validation of `--json` outputs against docs/schemas/*.json: a small
//! JSON Schema (2020-12) subset — `type`, `required`, `properties`,
//! `items`, `enum`, `const`, `oneOf` — that refuses any other keyword, so a schema
//! cannot silently say more than is checked.

#![allow(dead_code)] // each test file uses a subset
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: failing loudly is the point

use std::path::PathBuf;

use serde_json::Value;

/// Every command that prints JSON, with its schema file (docs/schemas)
/// and where the tests run it. A command that gains `--json` must be
/// added here (the walk test fails until it is).
pub const CASES: &[(&str, &str)] = &[
    ("plan", "plan"),
    ("apply", "apply"),
    ("verify", "verify"),
    ("destroy", "destroy"),
    ("show", "show"),
    ("config check", "config-check"),
    ("config show", "config-show"),
    ("pci list", "pci-list"),
    ("pci show", "pci-show"),
    ("pci assign", "pci-assign"),
    ("pci release", "pci-release"),
    ("pci assignable", "pci-assignable"),
    ("pci cmdline", "pci-cmdline"),
    ("doctor", "doctor"),
    ("lab up", "lab-up-event"),
    ("lab status", "lab-status"),
    ("lab down", "lab-down"),
    ("lab list", "lab-list"),
    ("lab restart", "lab-restart"),
    ("vif attach", "vif-attach"),
    ("vif detach", "vif-detach"),
    ("vif move", "vif-move"),
    ("bridge show", "bridge-show"),
    ("reconcile", "reconcile-status"),
    ("events", "event"),
];

/// docs/schemas.
pub fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas")
}

/// The schema file named by a document's `schema` ("drvdom/NAME/1").
pub fn load(name: &str) -> Value {
    let p = schema_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unknown type {other:?} in a schema"),
    }
}

fn check(schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        errs.push(format!("{at}: schema is not an object"));
        return;
    };
    for (k, kw) in s {
        match k.as_str() {
            "$schema" | "$id" | "title" | "description" => {}
            "type" => {
                let ok = match kw {
                    Value::String(t) => type_ok(t, v),
                    Value::Array(ts) => ts.iter().any(|t| type_ok(t.as_str().unwrap_or(""), v)),
                    _ => false,
                };
                if !ok {
                    errs.push(format!("{at}: {v} is not of type {kw}"));
                }
            }
            "required" => {
                for r in kw.as_array().into_iter().flatten() {
                    let r = r.as_str().unwrap_or("");
                    if v.is_object() && v.get(r).is_none() {
                        errs.push(format!("{at}: missing required key {r:?}"));
                    }
                }
            }
            "properties" => {
                if let (Some(props), Some(o)) = (kw.as_object(), v.as_object()) {
                    for (pk, ps) in props {
                        if let Some(pv) = o.get(pk) {
                            check(ps, pv, &format!("{at}.{pk}"), errs);
                        }
                    }
                }
            }
            "items" => {
                if let Some(a) = v.as_array() {
                    for (i, item) in a.iter().enumerate() {
                        check(kw, item, &format!("{at}[{i}]"), errs);
                    }
                }
            }
            "enum" => {
                if !kw.as_array().is_some_and(|e| e.contains(v)) {
                    errs.push(format!("{at}: {v} not one of {kw}"));
                }
            }
            "const" => {
                if kw != v {
                    errs.push(format!("{at}: {v} is not {kw}"));
                }
            }
            "oneOf" => {
                let passing = kw
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|sub| {
                        let mut e = Vec::new();
                        check(sub, v, at, &mut e);
                        e.is_empty()
                    })
                    .count();
                if passing != 1 {
                    errs.push(format!("{at}: {passing} of the oneOf schemas match, not 1"));
                }
            }
            other => errs.push(format!(
                "{at}: keyword {other:?} is not supported by the test validator"
            )),
        }
    }
}

/// Validate one JSON document (text): `schema` must be its first key and
/// name a schema file, and the document must satisfy it.
pub fn validate_text(text: &str) -> Result<String, String> {
    if !text.trim_start().starts_with("{") {
        return Err(format!("not an object: {text}"));
    }
    let v: Value = serde_json::from_str(text).map_err(|e| format!("{e}: {text}"))?;
    let first = text
        .trim_start()
        .trim_start_matches('{')
        .trim_start()
        .starts_with("\"schema\"");
    if !first {
        return Err(format!("`schema` is not the first key: {text}"));
    }
    let id = v["schema"].as_str().ok_or("no schema")?.to_string();
    let name = id
        .strip_prefix("drvdom/")
        .and_then(|r| r.strip_suffix("/1"))
        .ok_or_else(|| format!("bad schema id {id}"))?;
    let schema = load(name);
    let mut errs = Vec::new();
    check(&schema, &v, "$", &mut errs);
    if errs.is_empty() {
        Ok(id)
    } else {
        Err(format!("{id}: {}\n{text}", errs.join("\n")))
    }
}

/// Validate and require schema `want` (`drvdom/NAME/1`); JSON Lines
/// output is validated line by line.
pub fn assert_valid(out: &str, want: &str) {
    let docs: Vec<&str> = if out.trim_start().starts_with("{\n") {
        vec![out]
    } else {
        out.lines().filter(|l| !l.trim().is_empty()).collect()
    };
    assert!(!docs.is_empty(), "no JSON output (want {want})");
    for d in docs {
        let id = validate_text(d).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            id == want || id == "drvdom/error/1" && want == "drvdom/error/1",
            "schema {id}, want {want}: {d}"
        );
    }
}
