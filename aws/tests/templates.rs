//! The deployment's checks (issue 5):
//! 1. `templates/glue-tables.yaml` is what `tarn_aws::cfn::glue_tables_template` renders from
//!    `schemas/` (regenerate with `TARN_BLESS=1 cargo test -p tarn-aws --test templates`, or
//!    `tarn templates`);
//! 2. cfn-lint (scripts/cfn-lint.sh) passes on every template;
//! 3. every SDK call in aws/src is listed in aws/actions.toml, every Lambda function's role in
//!    templates/tarn.yaml allows the actions its calls need, and no role has a wildcard action.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn glue_tables_template_is_current() {
    let root = root();
    let specs = tarn_catalog::load_schemas(&root.join("schemas")).unwrap();
    let fresh = tarn_aws::cfn::glue_tables_template(&specs);
    let path = root.join(tarn_aws::cfn::GLUE_TABLES_PATH);
    if std::env::var_os("TARN_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is stale: regenerate it from schemas/ with `tarn templates` \
         (or TARN_BLESS=1 cargo test -p tarn-aws --test templates) and commit it",
        path.display()
    );
    // every JSON table has its resource, and nothing else is generated
    for spec in &specs {
        let id = tarn_aws::cfn::table_logical_id(&spec.name);
        assert_eq!(
            fresh.contains(&format!("\n  {id}:\n")),
            spec.kind == tarn_catalog::TableKind::Json,
            "{id}"
        );
    }
}

fn templates() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// Runs cfn-lint through scripts/cfn-lint.sh (which installs it into .venv when missing).
#[test]
fn cfn_lint_passes_on_every_template() {
    let root = root();
    let files = templates();
    assert!(
        files.len() >= 2,
        "templates/ should hold tarn.yaml and glue-tables.yaml"
    );
    let out = Command::new(root.join("scripts/cfn-lint.sh"))
        .args(&files)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run scripts/cfn-lint.sh ({e}): run ./scripts/test, which sets up the tools"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        root.join(".venv/bin/cfn-lint").exists(),
        "cfn-lint is not installed and could not be (pip into .venv): run ./scripts/test\n{text}"
    );
    // cfn-lint's exit code: bit 2 = errors, 4 = warnings, 8 = informational
    let code = out.status.code().unwrap_or(-1);
    assert!(code == 0, "cfn-lint found problems (exit {code}):\n{text}");
}

/// A template as JSON, through cfn-lint's own YAML loader (short-form intrinsics included).
fn load_template(path: &Path) -> Value {
    let root = root();
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        let st = Command::new(root.join("scripts/cfn-lint.sh"))
            .arg("--version")
            .current_dir(&root)
            .status();
        assert!(
            st.is_ok() && python.exists(),
            "no .venv with cfn-lint: run ./scripts/test"
        );
    }
    let out = Command::new(&python)
        .args([
            "-c",
            "import json, sys\nfrom cfnlint.decode import decode\n\
             t, errs = decode(sys.argv[1])\n\
             assert not errs, errs\n\
             print(json.dumps(t))",
        ])
        .arg(path)
        .output()
        .expect("running .venv/bin/python");
    assert!(
        out.status.success(),
        "loading {}: {}\n(run ./scripts/test to install cfn-lint)",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Operation names per SDK service, from the SDK crates' `src/operation/` (versions in Cargo.lock).
fn sdk_operations() -> BTreeMap<String, BTreeSet<String>> {
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.lock")).unwrap()).unwrap();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let registry = cargo_home.join("registry/src");
    let mut ops = BTreeMap::new();
    for pkg in lock["package"].as_array().unwrap() {
        let name = pkg["name"].as_str().unwrap();
        let Some(service) = name.strip_prefix("aws-sdk-") else {
            continue;
        };
        let version = pkg["version"].as_str().unwrap();
        let mut found = BTreeSet::new();
        for index in std::fs::read_dir(&registry).unwrap() {
            let dir = index
                .unwrap()
                .path()
                .join(format!("{name}-{version}/src/operation"));
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries {
                    let p = e.unwrap().path();
                    if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                        found.insert(stem.to_string());
                    }
                }
            }
        }
        assert!(
            !found.is_empty(),
            "no source of {name} {version} under {}: run cargo fetch",
            registry.display()
        );
        ops.insert(service.to_string(), found);
    }
    ops
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `service.operation` for every SDK call in aws/src: a `.name()` call whose name is an
/// operation of an SDK crate the file uses.
fn sdk_calls_in_sources() -> BTreeMap<String, BTreeSet<String>> {
    let ops = sdk_operations();
    let mut files = Vec::new();
    rust_files(&root().join("aws/src"), &mut files);
    let mut calls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let used: Vec<&String> = ops
            .keys()
            .filter(|s| text.contains(&format!("aws_sdk_{s}")))
            .collect();
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(pos) = text[i..].find("()") {
            let end = i + pos;
            let mut start = end;
            while start > 0
                && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_')
            {
                start -= 1;
            }
            if start > 0 && bytes[start - 1] == b'.' && start < end {
                let name = &text[start..end];
                for s in &used {
                    if ops[*s].contains(name) {
                        calls
                            .entry(format!("{s}.{name}"))
                            .or_default()
                            .insert(f.strip_prefix(root()).unwrap().display().to_string());
                    }
                }
            }
            i = end + 2;
        }
    }
    calls
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

/// Every IAM policy statement in a role resource; a statement under `Fn::If` counts with both
/// of its branches (`AWS::NoValue` gives none).
fn role_statements(role: &Value) -> Vec<Value> {
    fn unwrap_if(st: Value, out: &mut Vec<Value>) {
        match st.get("Fn::If").and_then(Value::as_array) {
            Some(branches) => {
                for b in branches.iter().skip(1) {
                    if b.get("Ref").and_then(Value::as_str) != Some("AWS::NoValue") {
                        unwrap_if(b.clone(), out);
                    }
                }
            }
            None => out.push(st),
        }
    }
    let mut out = Vec::new();
    for p in as_list(&role["Properties"]["Policies"]) {
        for st in as_list(&p["PolicyDocument"]["Statement"]) {
            unwrap_if(st, &mut out);
        }
    }
    out
}

#[test]
fn roles_allow_exactly_what_the_code_calls_without_wildcards() {
    let root = root();
    let actions: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("aws/actions.toml")).unwrap()).unwrap();
    let operations = actions["operations"].as_table().unwrap();

    // 1. every SDK call in the sources is listed, and every listed operation is still called
    let found = sdk_calls_in_sources();
    assert!(
        found.contains_key("s3.put_object") && found.contains_key("kms.decrypt"),
        "the SDK call scan found nothing plausible: {found:?}"
    );
    for (call, files) in &found {
        assert!(
            operations.contains_key(call),
            "{call} (called in {files:?}) is not in aws/actions.toml [operations]: add it with its IAM actions, then to the functions that reach it"
        );
    }
    for op in operations.keys() {
        assert!(
            found.contains_key(op),
            "aws/actions.toml lists {op}, which aws/src no longer calls"
        );
    }

    // 2. every listed operation is made by some function or by the CLI
    let functions = actions["functions"].as_table().unwrap();
    let mut reached: BTreeSet<String> = actions["cli"]["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for f in functions.values() {
        for c in f["calls"].as_array().unwrap() {
            let c = c.as_str().unwrap();
            assert!(
                operations.contains_key(c),
                "unknown operation {c} in aws/actions.toml"
            );
            reached.insert(c.to_string());
        }
    }
    for op in operations.keys() {
        assert!(
            reached.contains(op),
            "{op}: no function or CLI command in aws/actions.toml makes it"
        );
    }

    // 3. the template: every function listed, each role allows its actions, no wildcards
    let t = load_template(&root.join("templates/tarn.yaml"));
    let resources = t["Resources"].as_object().unwrap();
    for (id, r) in resources {
        let ty = r["Type"].as_str().unwrap_or_default();
        if ty == "AWS::Serverless::Function" || ty == "AWS::Lambda::Function" {
            assert!(
                functions.contains_key(id),
                "function {id} is not in aws/actions.toml"
            );
        }
        if ty == "AWS::IAM::Role" {
            assert!(
                as_list(&r["Properties"]["ManagedPolicyArns"]).is_empty(),
                "role {id}: managed policies hide what is allowed; use inline statements"
            );
            for st in role_statements(r) {
                for a in as_list(&st["Action"]) {
                    let a = a
                        .as_str()
                        .unwrap_or_else(|| panic!("role {id}: action {a} not a string"));
                    assert!(!a.contains('*'), "role {id} has a wildcard action {a}");
                }
                assert!(st.get("NotAction").is_none(), "role {id} uses NotAction");
                for res in as_list(&st["Resource"]) {
                    assert_ne!(res, Value::from("*"), "role {id}: Resource \"*\" in {st}");
                }
            }
        }
        if ty.starts_with("AWS::Serverless::") {
            assert!(
                r["Properties"].get("Policies").is_none(),
                "{id}: SAM policy templates are not checked; give it a Role"
            );
        }
    }
    for (id, f) in functions {
        let r = resources.get(id).unwrap_or_else(|| {
            panic!("aws/actions.toml names {id}, which templates/tarn.yaml does not define")
        });
        let p = &r["Properties"];
        let bin = f["binary"].as_str().unwrap();
        if r["Type"] == "AWS::Serverless::Function" {
            assert_eq!(
                r["Metadata"]["BuildProperties"]["Binary"].as_str(),
                Some(bin),
                "{id} builds {bin}"
            );
        }
        if p["PackageType"] == "Image" {
            // a container image function runs its binary as the image's entry point
            let entry = p["ImageConfig"]["EntryPoint"][0]
                .as_str()
                .unwrap_or_default();
            assert!(
                entry.ends_with(&format!("/{bin}")),
                "{id} runs {bin}, not {entry:?}"
            );
            let dockerfile = r["Metadata"]["Dockerfile"].as_str().unwrap_or_default();
            let text = std::fs::read_to_string(root.join(dockerfile))
                .unwrap_or_else(|e| panic!("{id}: its Dockerfile {dockerfile:?}: {e}"));
            assert!(
                text.contains(&format!("/usr/local/bin/{bin}")),
                "{id}: {dockerfile} does not install {bin}"
            );
        }
        let role_ref = &p["Role"]["Fn::GetAtt"];
        let role_id = match role_ref {
            Value::Array(a) => a[0].as_str().unwrap().to_string(),
            Value::String(s) => s.split('.').next().unwrap().to_string(),
            _ => panic!("{id}: Role must be !GetAtt <its own role>.Arn"),
        };
        let role = &resources[&role_id];
        assert_eq!(
            role["Type"], "AWS::IAM::Role",
            "{id}: {role_id} is not a role"
        );
        let allowed: BTreeSet<String> = role_statements(role)
            .iter()
            .filter(|s| s["Effect"] == "Allow")
            .flat_map(|s| as_list(&s["Action"]))
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        for c in f["calls"].as_array().unwrap() {
            let c = c.as_str().unwrap();
            for a in operations[c].as_array().unwrap() {
                let a = a.as_str().unwrap();
                assert!(
                    allowed.contains(a),
                    "{id} can call {c}, but its role {role_id} does not allow {a}"
                );
            }
        }
        // one role per function
        for (other, r2) in resources {
            if other != id && r2["Properties"]["Role"]["Fn::GetAtt"] == *role_ref {
                panic!("{id} and {other} share the role {role_id}");
            }
        }
    }
}

/// The root stack nests every other template (a catalog stack never referenced by the root was
/// one of the earlier deployments' failures), and no template names an account or a region.
#[test]
fn root_references_every_template_and_nothing_is_hard_coded() {
    let root = root();
    let t = load_template(&root.join("templates/tarn.yaml"));
    let nested: BTreeSet<String> = t["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| {
            r["Type"] == "AWS::CloudFormation::Stack" || r["Type"] == "AWS::Serverless::Application"
        })
        .filter_map(|r| {
            r["Properties"]["TemplateURL"]
                .as_str()
                .or(r["Properties"]["Location"].as_str())
                .map(String::from)
        })
        .collect();
    for path in templates() {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name != "tarn.yaml" {
            assert!(
                nested.contains(&name),
                "templates/tarn.yaml does not nest {name}"
            );
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // 12-digit account ids
        let digits: Vec<&str> = text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|d| d.len() == 12)
            .collect();
        assert!(digits.is_empty(), "{name} names an account id: {digits:?}");
        for region in [
            "us-east-",
            "us-west-",
            "eu-west-",
            "eu-central-",
            "eu-north-",
            "eu-south-",
            "ap-south",
            "ap-northeast-",
            "ap-southeast-",
            "ap-east-",
            "ca-central-",
            "sa-east-",
            "me-south-",
            "me-central-",
            "af-south-",
            "il-central-",
            "us-gov-",
            "cn-north",
        ] {
            assert!(
                !text.contains(region),
                "{name} names a region ({region}...)"
            );
        }
        assert!(
            !text.contains("arn:aws:"),
            "{name} writes a partition: use arn:${{AWS::Partition}}:"
        );
    }
}

#[test]
fn landed_objects_outlive_the_dead_letter_queues_messages() {
    let t = load_template(&root().join("templates/tarn.yaml"));
    let days = &t["Parameters"]["IngressExpirationDays"];
    let min_days = days["MinValue"]
        .as_u64()
        .expect("IngressExpirationDays has a MinValue");
    assert!(days["Default"].as_u64().unwrap() >= min_days);
    let resources = t["Resources"].as_object().unwrap();
    let mut dlqs = 0;
    for (name, r) in resources {
        if r["Type"] == "AWS::SQS::Queue" && name.ends_with("DLQ") {
            dlqs += 1;
            let kept = r["Properties"]["MessageRetentionPeriod"]
                .as_u64()
                .unwrap_or(345_600);
            assert!(
                min_days * 86_400 > kept,
                "{name} keeps messages {kept} s, longer than landed objects live ({min_days} days at least)"
            );
        }
    }
    assert!(dlqs >= 3, "{dlqs}");
}
