//! `promtool check metrics` (Debian's `prometheus` package; `scripts/test` installs it) on an
//! exposition, shared by ingress/tests/metrics.rs and the root tests through `#[path]`.

use std::io::Write;
use std::process::{Command, Stdio};

/// Whether promtool passed `exposition`, and what it said (lint findings included).
pub fn check(exposition: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs: install Debian's prometheus package (apt-get install prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}
