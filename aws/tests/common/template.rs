//! Loading a CloudFormation template as JSON (shared by aws/tests/templates.rs and
//! aws/tests/edge.rs through `#[path]`).
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A template as JSON, through cfn-lint's own YAML loader (short-form intrinsics included).
pub fn load_template(path: &Path) -> Value {
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
