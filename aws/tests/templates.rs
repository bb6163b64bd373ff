//! The deployment's checks (issue 5):
//! 1. `templates/glue-tables.yaml` is what `tarn_aws::cfn::glue_tables_template` renders from
//!    `schemas/` (regenerate with `TARN_BLESS=1 cargo test -p tarn-aws --test templates`, or
//!    `tarn templates`);
//! 2. cfn-lint passes on every template in three regions ([`LINT_REGIONS`]);
//! 3. every SDK call in aws/src is listed in aws/actions.toml, every Lambda function's role in
//!    templates/tarn.yaml allows the actions its calls need, and no role has a wildcard action;
//! 4. operable by default (issue 12): every function, stage queue, dead-letter queue and the API
//!    have an alarm on the alarm topic; stateful resources are retained on stack deletion; the
//!    API Gateway account log role is opt-in; `cloudtrail_logs` projects its partitions; the
//!    state store's old versions expire within a day; the trail leaves out the lock's leases.
//! 5. idempotency keys (issue 16): `PostObject` puts `id=<the authorizer's id>` with
//!    `If-None-Match: *` and answers S3's 412 as the replay (200, `Idempotency-Replayed: true`).
//! 6. metrics (issue 15): every function writes its EMF metrics to the stack's namespace, and
//!    the CloudWatch dashboard shows every measure the functions emit, under its own dimensions.

#[path = "common/template.rs"]
mod template;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use template::{load_template, root};

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

/// The regions cfn-lint checks every template against (resource types, properties and values
/// available there): a US, a European and an Asia-Pacific one. scripts/cfn-lint.sh lints the same.
const LINT_REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];

/// .venv/bin/cfn-lint, installed by scripts/cfn-lint.sh when missing.
fn cfn_lint() -> PathBuf {
    let root = root();
    let lint = root.join(".venv/bin/cfn-lint");
    if !lint.exists() {
        let out = Command::new(root.join("scripts/cfn-lint.sh"))
            .arg(root.join("templates/glue-tables.yaml"))
            .current_dir(&root)
            .output();
        assert!(
            lint.exists(),
            "cfn-lint is not installed and could not be (pip into .venv by scripts/cfn-lint.sh): \
             run ./scripts/test\n{out:?}"
        );
    }
    lint
}

/// cfn-lint reports nothing (no error, no warning, no informational finding) on every template,
/// in each of [`LINT_REGIONS`].
#[test]
fn cfn_lint_passes_on_every_template() {
    let root = root();
    let files = templates();
    assert!(
        files.len() >= 2,
        "templates/ should hold tarn.yaml and glue-tables.yaml"
    );
    let out = Command::new(cfn_lint())
        .arg("--regions")
        .args(LINT_REGIONS)
        .arg("--")
        .args(&files)
        .current_dir(&root)
        .output()
        .expect("running .venv/bin/cfn-lint");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // cfn-lint's exit code: bit 2 = errors, 4 = warnings, 8 = informational
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0,
        "cfn-lint found problems in {LINT_REGIONS:?} (exit {code}):\n{text}"
    );
    // the script people run by hand lints the same regions
    let script = std::fs::read_to_string(root.join("scripts/cfn-lint.sh")).unwrap();
    assert!(
        script.contains(&format!("--regions {}", LINT_REGIONS.join(" "))),
        "scripts/cfn-lint.sh should lint {LINT_REGIONS:?} as CI does"
    );
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
            // the code is what scripts/package-lambdas lays out for the function's binary
            assert_eq!(
                p["CodeUri"].as_str(),
                Some(format!("../target/lambda/{bin}/").as_str()),
                "{id} deploys {bin} as scripts/package-lambdas builds it"
            );
            assert!(
                root.join("aws/src/bin").join(format!("{bin}.rs")).exists(),
                "{id}: no binary {bin} in aws/src/bin"
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

// ---------------------------------------------------------------- operable by default (issue 12)

fn tarn_template() -> Value {
    load_template(&root().join("templates/tarn.yaml"))
}

/// The logical id a `!GetAtt Id.Attr` (either form) names, when it names `attr`.
fn get_att_of(v: &Value, attr: &str) -> Option<String> {
    match &v["Fn::GetAtt"] {
        Value::Array(a) if a.len() == 2 && a[1] == attr => a[0].as_str().map(String::from),
        Value::String(s) => s.strip_suffix(&format!(".{attr}")).map(String::from),
        _ => None,
    }
}

/// Every alarm notifies the alarm topic: `AlarmTopicArn`, or the topic the stack creates when
/// that is empty.
fn alarm_topic() -> Value {
    serde_json::json!([{"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}])
}

#[test]
fn every_function_queue_dead_letter_queue_and_the_api_have_an_alarm() {
    let t = tarn_template();
    let resources = t["Resources"].as_object().unwrap();
    let alarms: Vec<(&String, &Value)> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .collect();
    for (id, a) in &alarms {
        assert_eq!(
            a["Properties"]["AlarmActions"],
            alarm_topic(),
            "{id} does not notify the alarm topic"
        );
    }
    // the alarm on `metric` whose dimension `name` is `value`
    let alarm_on = |namespace: &str, metric: &str, name: &str, value: &dyn Fn(&Value) -> bool| {
        alarms
            .iter()
            .filter(|(_, a)| {
                let p = &a["Properties"];
                p["Namespace"] == namespace
                    && p["MetricName"] == metric
                    && as_list(&p["Dimensions"])
                        .iter()
                        .any(|d| d["Name"] == name && value(&d["Value"]))
            })
            .map(|(id, a)| ((*id).clone(), (*a).clone()))
            .collect::<Vec<_>>()
    };
    let one = |what: String, found: Vec<(String, Value)>, owner: &Value| {
        assert_eq!(found.len(), 1, "{what}: {} alarms", found.len());
        let (id, a) = &found[0];
        assert_eq!(
            a.get("Condition"),
            owner.get("Condition"),
            "{id} should exist exactly when what it watches does ({what})"
        );
        let p = &a["Properties"];
        assert_eq!(p["ComparisonOperator"], "GreaterThanThreshold", "{id}");
        assert_eq!(p["TreatMissingData"], "notBreaching", "{id}");
        p.clone()
    };

    // every function: failed invocations
    let mut functions = 0;
    for (id, r) in resources {
        if r["Type"] == "AWS::Serverless::Function" || r["Type"] == "AWS::Lambda::Function" {
            functions += 1;
            let p = one(
                format!("errors of {id}"),
                alarm_on("AWS/Lambda", "Errors", "FunctionName", &|v| {
                    v["Ref"] == id.as_str()
                }),
                r,
            );
            assert_eq!(p["Statistic"], "Sum", "{id}");
            assert_eq!(p["Threshold"], 0, "{id}");
        }
    }
    assert!(functions >= 7, "{functions} functions");

    // every stage queue: the age of its oldest message; every dead-letter queue: what it holds
    let mut dlqs = BTreeSet::new();
    for (id, r) in resources {
        if r["Type"] != "AWS::SQS::Queue" {
            continue;
        }
        let redrive = &r["Properties"]["RedrivePolicy"];
        if redrive.is_null() {
            continue;
        }
        let dlq = get_att_of(&redrive["deadLetterTargetArn"], "Arn")
            .unwrap_or_else(|| panic!("{id}: deadLetterTargetArn is not !GetAtt <queue>.Arn"));
        dlqs.insert(dlq);
        let p = one(
            format!("age of the oldest message of {id}"),
            alarm_on(
                "AWS/SQS",
                "ApproximateAgeOfOldestMessage",
                "QueueName",
                &|v| get_att_of(v, "QueueName").as_deref() == Some(id.as_str()),
            ),
            r,
        );
        assert_eq!(p["Statistic"], "Maximum", "{id}");
        assert_eq!(
            p["Threshold"],
            serde_json::json!({"Ref": "QueueAgeAlarmSeconds"}),
            "{id}"
        );
    }
    assert!(dlqs.len() >= 3, "{dlqs:?}");
    for dlq in &dlqs {
        let p = one(
            format!("messages in the dead-letter queue {dlq}"),
            alarm_on(
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "QueueName",
                &|v| get_att_of(v, "QueueName").as_deref() == Some(dlq.as_str()),
            ),
            &resources[dlq],
        );
        assert_eq!(p["Threshold"], 0, "{dlq}");
    }

    // the API: 5xx answers of each stage (API Gateway names REST APIs' metrics by name)
    let mut stages = 0;
    for (id, r) in resources {
        if r["Type"] != "AWS::ApiGateway::Stage" {
            continue;
        }
        stages += 1;
        let api = r["Properties"]["RestApiId"]["Ref"].as_str().unwrap();
        let api_name = &resources[api]["Properties"]["Name"];
        let found: Vec<_> = alarm_on("AWS/ApiGateway", "5XXError", "Stage", &|v| {
            v["Ref"] == id.as_str()
        })
        .into_iter()
        .filter(|(_, a)| {
            as_list(&a["Properties"]["Dimensions"])
                .iter()
                .any(|d| d["Name"] == "ApiName" && d["Value"] == *api_name)
        })
        .collect();
        let p = one(format!("5xx of {api} stage {id}"), found, r);
        assert_eq!(p["Statistic"], "Sum", "{id}");
    }
    assert!(stages >= 1);

    // the topic the stack creates is encrypted with the platform key, which lets CloudWatch
    // publish to it
    let topic = &resources["AlarmTopic"];
    assert_eq!(topic["Condition"], "CreateAlarmTopic");
    assert!(
        get_att_of(&topic["Properties"]["KmsMasterKeyId"], "Arn").as_deref() == Some("Key"),
        "{topic}"
    );
    let key_policy = &resources["Key"]["Properties"]["KeyPolicy"];
    assert!(
        as_list(&key_policy["Statement"]).iter().any(|s| {
            s["Effect"] == "Allow"
                && s["Principal"]["Service"] == "cloudwatch.amazonaws.com"
                && as_list(&s["Action"]).contains(&Value::from("kms:GenerateDataKey*"))
                && as_list(&s["Action"]).contains(&Value::from("kms:Decrypt"))
        }),
        "the key policy does not let CloudWatch publish to the encrypted alarm topic"
    );
    assert_eq!(
        t["Conditions"]["CreateAlarmTopic"],
        serde_json::json!({"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]})
    );
}

/// The `{namespace,dim,...} MetricName="..."` of a `SEARCH` expression.
fn searched(expr: &str) -> Option<(Vec<String>, String)> {
    let inner = expr.strip_prefix("SEARCH('{")?;
    let (schema, rest) = inner.split_once('}')?;
    let name = rest.split("MetricName=\"").nth(1)?.split('"').next()?;
    Some((
        schema.split(',').map(String::from).collect(),
        name.to_string(),
    ))
}

#[test]
fn the_dashboard_shows_every_measure_the_functions_emit() {
    use tarn_core::metrics as m;
    let t = tarn_template();
    let namespace = serde_json::json!({"Fn::Sub": "tarn/${AWS::StackName}"});
    assert_eq!(
        t["Globals"]["Function"]["Environment"]["Variables"]["TARN_METRICS_NAMESPACE"],
        namespace
    );
    for (id, r) in t["Resources"].as_object().unwrap() {
        if r["Type"] == "AWS::Lambda::Function" {
            assert_eq!(
                r["Properties"]["Environment"]["Variables"]["TARN_METRICS_NAMESPACE"], namespace,
                "{id}"
            );
        }
    }
    let dashboard = &t["Resources"]["Dashboard"];
    assert_eq!(dashboard["Type"], "AWS::CloudWatch::Dashboard");
    let body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("the body is one !Sub string");
    let body = body
        .replace("${AWS::StackName}", "stack")
        .replace("${AWS::Region}", "eu-west-1")
        .replace("${NamePrefix}", "tarn");
    assert!(!body.contains("${"), "an unresolved substitution: {body}");
    let body: Value = serde_json::from_str(&body).expect("the body is JSON");
    let mut shown = BTreeSet::new();
    let mut services = BTreeSet::new();
    for w in body["widgets"].as_array().unwrap() {
        for metric in w["properties"]["metrics"].as_array().unwrap() {
            if let Some(expr) = metric[0]["expression"].as_str() {
                let (schema, name) = searched(expr).unwrap_or_else(|| panic!("{expr}"));
                if schema[0] == "tarn/stack" {
                    let measure = m::ALL
                        .iter()
                        .find(|m| m.name == name)
                        .unwrap_or_else(|| panic!("{name} is no measure"));
                    assert_eq!(schema[1..], *measure.labels, "{name}'s dimensions");
                    shown.insert(name);
                } else {
                    services.insert(schema[0].clone());
                }
            } else if metric[0] != "." {
                // `.`: the namespace of the line above
                services.insert(metric[0].as_str().unwrap().to_string());
            }
        }
    }
    // the ingress's and the backlog's measures are API Gateway's and SQS's own on AWS, and
    // CloudTrail delivers the audit trail
    let by_services = [
        &m::INGRESS_REQUESTS,
        &m::INGRESS_REQUEST_DURATION,
        &m::INGRESS_RECEIVED_BYTES,
        &m::PIPELINE_BACKLOG,
        &m::PIPELINE_OLDEST_PENDING_AGE,
        &m::AUDIT_DELIVERY_FAILURES,
    ];
    for measure in m::ALL {
        if !by_services.contains(measure) {
            assert!(
                shown.contains(measure.name),
                "{} is not on the dashboard",
                measure.name
            );
        }
    }
    assert_eq!(
        services,
        ["AWS/ApiGateway".to_string(), "AWS/SQS".to_string()].into()
    );
}

#[test]
fn stateful_resources_are_kept_when_the_stack_is_deleted() {
    let t = tarn_template();
    let mut kept = BTreeSet::new();
    for (id, r) in t["Resources"].as_object().unwrap() {
        let ty = r["Type"].as_str().unwrap_or_default();
        if matches!(
            ty,
            "AWS::S3::Bucket"
                | "AWS::S3::BucketPolicy"
                | "AWS::KMS::Key"
                | "AWS::Cognito::UserPool"
                | "AWS::Cognito::UserPoolGroup"
        ) {
            assert_eq!(r["DeletionPolicy"], "Retain", "{id} ({ty})");
            assert_eq!(r["UpdateReplacePolicy"], "Retain", "{id} ({ty})");
            kept.insert(ty.to_string());
        }
    }
    for ty in ["AWS::S3::Bucket", "AWS::KMS::Key", "AWS::Cognito::UserPool"] {
        assert!(kept.contains(ty), "no {ty} in the template");
    }
}

#[test]
fn the_api_gateway_account_log_role_is_set_only_when_asked() {
    let t = tarn_template();
    let param = &t["Parameters"]["SetApiGatewayAccountLogRole"];
    assert_eq!(param["Default"], "false");
    assert_eq!(
        t["Conditions"]["SetApiAccount"],
        serde_json::json!({"Fn::Equals": [{"Ref": "SetApiGatewayAccountLogRole"}, "true"]})
    );
    let resources = t["Resources"].as_object().unwrap();
    let mut accounts = 0;
    for (id, r) in resources {
        if r["Type"] != "AWS::ApiGateway::Account" {
            continue;
        }
        accounts += 1;
        assert_eq!(r["Condition"], "SetApiAccount", "{id}");
        let role = get_att_of(&r["Properties"]["CloudWatchRoleArn"], "Arn").unwrap();
        assert_eq!(resources[&role]["Condition"], "SetApiAccount", "{role}");
        // a region-wide setting other APIs rely on: kept, with its role, when the stack goes
        for x in [id, &role] {
            assert_eq!(resources[x]["DeletionPolicy"], "Retain", "{x}");
            assert_eq!(resources[x]["UpdateReplacePolicy"], "Retain", "{x}");
        }
    }
    assert_eq!(accounts, 1);
}

/// The Athena table has the local engine's columns and partition keys (so the queries in
/// queries/ run unchanged on both), and projects its partitions from the log files' keys.
#[test]
fn cloudtrail_logs_projects_its_partitions_as_the_local_engine_names_them() {
    let t = tarn_template();
    let table = t["Resources"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| {
            r["Type"] == "AWS::Glue::Table"
                && r["Properties"]["TableInput"]["Name"] == tarn_query::audit::CLOUDTRAIL_TABLE
        })
        .expect("the template defines cloudtrail_logs");
    let input = &table["Properties"]["TableInput"];
    let local = tarn_query::audit::cloudtrail_schema();
    let local: Vec<&str> = local.fields().iter().map(|f| f.name().as_str()).collect();
    let partition_keys = as_list(&input["PartitionKeys"]);
    let keys: Vec<&str> = partition_keys
        .iter()
        .map(|k| {
            assert_eq!(k["Type"], "string", "{k}");
            k["Name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(keys, ["region", "year", "month", "day"]);
    let columns: Vec<&str> = input["StorageDescriptor"]["Columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    let both: Vec<&str> = columns.iter().chain(&keys).copied().collect();
    assert_eq!(
        both, local,
        "the Athena table and the local cloudtrail_logs differ"
    );

    let p = &input["Parameters"];
    assert_eq!(p["projection.enabled"], "true");
    assert_eq!(p["projection.region.type"], "enum");
    assert!(!p["projection.region.values"].is_null());
    for (k, range) in [
        ("year", None),
        ("month", Some("1,12")),
        ("day", Some("1,31")),
    ] {
        assert_eq!(p[format!("projection.{k}.type")], "integer", "{k}");
        let r = p[format!("projection.{k}.range")].as_str().unwrap();
        if let Some(range) = range {
            assert_eq!(r, range, "{k}");
            // CloudTrail writes 01..12 and 01..31
            assert_eq!(p[format!("projection.{k}.digits")], "2", "{k}");
        }
    }
    let location = input["StorageDescriptor"]["Location"]["Fn::Sub"]
        .as_str()
        .unwrap();
    assert!(location.ends_with("/CloudTrail/"), "{location}");
    assert_eq!(
        p["storage.location.template"]["Fn::Sub"],
        format!("{location}${{!region}}/${{!year}}/${{!month}}/${{!day}}/"),
        "partitions must follow AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/"
    );
}

/// The state store's prefix and bucket, as the functions get them.
fn state_prefix(t: &Value) -> String {
    let vars = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert!(
        vars.get("TARN_AWS_STATE_BUCKET").is_none(),
        "the state store is expected in the lake bucket"
    );
    vars["TARN_AWS_STATE_PREFIX"].as_str().unwrap().to_string()
}

#[test]
fn the_state_stores_old_versions_expire_within_a_day() {
    let t = tarn_template();
    let prefix = state_prefix(&t);
    let lake = &t["Resources"]["LakeBucket"]["Properties"];
    assert_eq!(lake["VersioningConfiguration"]["Status"], "Enabled");
    let rule = as_list(&lake["LifecycleConfiguration"]["Rules"])
        .into_iter()
        .find(|r| r["Prefix"] == prefix.as_str() || r["Filter"]["Prefix"] == prefix.as_str())
        .unwrap_or_else(|| panic!("no lifecycle rule on {prefix} in the lake bucket"));
    assert_eq!(rule["Status"], "Enabled");
    assert_eq!(rule["NoncurrentVersionExpiration"]["NoncurrentDays"], 1);
    assert_eq!(rule["ExpiredObjectDeleteMarker"], true);
}

#[test]
fn the_trail_logs_every_platform_bucket_but_the_lock_leases() {
    let t = tarn_template();
    let lock_prefix = format!("{}{}", state_prefix(&t), tarn_aws::lock::LOCKS_PREFIX);
    let trail = t["Resources"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| r["Type"] == "AWS::CloudTrail::Trail")
        .expect("a trail");
    let p = &trail["Properties"];
    assert!(
        p.get("EventSelectors").is_none(),
        "basic selectors cannot leave a prefix out"
    );
    let selectors = as_list(&p["AdvancedEventSelectors"]);
    let field = |s: &Value, name: &str| -> Value {
        as_list(&s["FieldSelectors"])
            .into_iter()
            .find(|f| f["Field"] == name)
            .unwrap_or(Value::Null)
    };
    assert!(
        selectors.iter().any(|s| field(s, "eventCategory")["Equals"]
            == serde_json::json!(["Management"])
            && as_list(&s["FieldSelectors"]).len() == 1),
        "every management event is logged"
    );
    let data: Vec<&Value> = selectors
        .iter()
        .filter(|s| field(s, "eventCategory")["Equals"] == serde_json::json!(["Data"]))
        .collect();
    assert_eq!(data.len(), 1, "{data:?}");
    let s = data[0];
    assert_eq!(
        field(s, "resources.type")["Equals"],
        serde_json::json!(["AWS::S3::Object"])
    );
    for narrowing in ["readOnly", "eventName", "eventSource"] {
        assert!(
            field(s, narrowing).is_null(),
            "{narrowing} narrows the data events"
        );
    }
    let arn = field(s, "resources.ARN");
    let starts: BTreeSet<String> = as_list(&arn["StartsWith"])
        .iter()
        .map(|v| v["Fn::Sub"].as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = [
        "IngressBucket",
        "LakeBucket",
        "QuarantineBucket",
        "AthenaResultsBucket",
    ]
    .iter()
    .map(|b| format!("${{{b}.Arn}}/"))
    .collect();
    assert_eq!(starts, expected);
    assert_eq!(
        arn["NotStartsWith"],
        serde_json::json!([{"Fn::Sub": format!("${{LakeBucket.Arn}}/{lock_prefix}")}]),
        "only the lock's leases are left out"
    );
    for other in ["Equals", "EndsWith", "NotEquals", "NotEndsWith"] {
        assert!(arn.get(other).is_none(), "resources.ARN {other}");
    }
}

// ---------------------------------------------------------------- idempotency keys (issue 16)

/// `PostObject` lands `id=<the authorizer's id>` with `If-None-Match: *`, and answers S3's 412
/// (that id exists: a repeated idempotency key) as the replay: 200, the same id, `"replayed":
/// true` and `Idempotency-Replayed: true`; S3's 409 (a conditional put racing another) is a 503
/// to retry. Which integration response each S3 status selects is checked in tests/edge.rs.
#[test]
fn post_object_lands_once_under_the_authorizers_id_and_maps_412_to_the_replay() {
    let t = tarn_template();
    let post = &t["Resources"]["PostObject"]["Properties"];
    let integration = &post["Integration"];
    assert_eq!(integration["IntegrationHttpMethod"], "PUT");
    let uri = serde_json::to_string(&integration["Uri"]).unwrap();
    assert!(uri.contains("/id={key}"), "{uri}");
    let params = &integration["RequestParameters"];
    assert_eq!(
        params["integration.request.path.key"],
        "context.authorizer.id"
    );
    assert_eq!(params["integration.request.header.If-None-Match"], "'*'");
    let responses = integration["IntegrationResponses"].as_array().unwrap();
    let by_pattern = |p: &str| {
        responses
            .iter()
            .find(|r| r["SelectionPattern"] == p)
            .unwrap_or_else(|| panic!("no integration response selected by {p}"))
    };
    // a landed upload answers the id it landed under
    let landed = by_pattern("2\\d{2}");
    let vtl = landed["ResponseTemplates"]["application/json"]
        .as_str()
        .unwrap();
    assert!(
        vtl.contains(r#"{"success": true, "data": {"id": "$context.authorizer.id"}}"#),
        "{vtl}"
    );
    assert!(!vtl.contains("requestId"), "{vtl}");
    // a replay: the first id, 200, said twice
    let replay = by_pattern("412");
    assert_eq!(
        replay["ResponseParameters"]["method.response.header.Idempotency-Replayed"],
        "'true'"
    );
    let vtl = replay["ResponseTemplates"]["application/json"]
        .as_str()
        .unwrap();
    assert!(
        vtl.contains("#set($context.responseOverride.status = 200)"),
        "{vtl}"
    );
    let body: Value = serde_json::from_str(
        vtl.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<String>()
            .replace(
                "$context.authorizer.id",
                "00000000-0000-8000-8000-000000000000",
            )
            .trim(),
    )
    .unwrap();
    assert_eq!(
        body,
        serde_json::json!({"success": true, "data": {"id": "00000000-0000-8000-8000-000000000000", "replayed": true}})
    );
    let method_response = post["MethodResponses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["StatusCode"] == replay["StatusCode"])
        .expect("the replay's method response");
    assert_eq!(
        method_response["ResponseParameters"]["method.response.header.Idempotency-Replayed"],
        true
    );
    // a conditional put that raced another: retry (the retry meets the 412)
    let busy = by_pattern("(409|500|503)");
    assert_eq!(busy["StatusCode"], "503");
    assert_eq!(
        busy["ResponseParameters"]["method.response.header.Retry-After"],
        "'1'"
    );
    // the S3 proxy's role needs nothing more than PutObject for a conditional put
    let role = &t["Resources"]["ApiS3Role"];
    let actions: Vec<Value> = role_statements(role)
        .iter()
        .flat_map(|s| as_list(&s["Action"]))
        .collect();
    assert!(
        actions.contains(&Value::from("s3:PutObject")),
        "{actions:?}"
    );
}
