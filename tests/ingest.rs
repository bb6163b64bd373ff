//! `tarn ingest` and the README's Python producer against a real `tarn serve`: directories,
//! multipart uploads above the threshold, refusals with reasons in the summary, ids as JSON;
//! the Python example, taken from the README as written, sends the same files by the same
//! protocol.

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

use common::tarn;

/// `tarn serve` on a fresh data dir, stopped (SIGTERM) when dropped.
struct Serve {
    child: Child,
    base: String,
    data_dir: String,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

async fn serve() -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("d").display().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_tarn"))
        .args([
            "serve",
            "--data-dir",
            &data_dir,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    tarn::platform::wait_healthy(&reqwest::Client::new(), &base, Duration::from_secs(60))
        .await
        .expect("tarn serve answers /health");
    Serve {
        child,
        base,
        data_dir,
        _dir: dir,
    }
}

fn writer_token(s: &Serve) -> String {
    let out = tarn(&[
        "token",
        "--data-dir",
        &s.data_dir,
        "--user",
        "alice",
        "--groups",
        "tarn-writers",
    ]);
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A JPEG-looking file of `n` bytes.
fn jpeg(path: &Path, n: usize) {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
    b.extend((4..n).map(|i| (i % 251) as u8));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b).unwrap();
}

/// The document's status as its producer reads it.
async fn status(s: &Serve, token: &str, id: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}/table/photos/object/{id}", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_sends_a_directory_in_parts_and_posts_and_sums_up() {
    let s = serve().await;
    let token = writer_token(&s);
    let files = tempfile::tempdir().unwrap();
    let root = files.path();
    jpeg(&root.join("one.jpg"), 2000);
    jpeg(&root.join("sub/big.jpg"), 9 * 1024 * 1024 + 5);
    std::fs::write(root.join("notes.txt"), b"not a photo").unwrap();
    let out = tarn(&[
        "ingest",
        "--url",
        &s.base,
        "--token",
        &token,
        "--table",
        "photos",
        "--multipart-threshold",
        "1MiB",
        "-j",
        "2",
        "--format",
        "json",
        &root.display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a refused file makes the exit code non-zero"
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    let files: Vec<&str> = rows.iter().map(|r| r["file"].as_str().unwrap()).collect();
    assert!(
        files[0].ends_with("notes.txt")
            && files[1].ends_with("one.jpg")
            && files[2].ends_with("sub/big.jpg"),
        "{files:?}"
    );
    assert!(rows[0]["id"].is_null());
    assert!(
        rows[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("unsupported_content_type"),
        "{}",
        rows[0]
    );
    for r in &rows[1..] {
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["replayed"], false);
        let id = r["id"].as_str().unwrap();
        let st = status(&s, &token, id).await;
        assert_eq!(st["data"]["id"], id, "{st}");
    }
    assert!(
        stderr.contains(&format!(
            "sent 2 of 3 ({} bytes), 0 replays, 1 refused (1 unsupported_content_type)",
            2000 + 9 * 1024 * 1024 + 5
        )),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_python_producer_speaks_the_same_protocol() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("```python\n")
        .expect("a python block in the README")
        + 10;
    let end = start + readme[start..].find("```").unwrap();
    let script = &readme[start..end];
    assert!(!script.contains("import requests"), "standard library only");
    let s = serve().await;
    let token = writer_token(&s);
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("producer.py");
    std::fs::write(&path, script).unwrap();
    let (small, big) = (files.path().join("small.jpg"), files.path().join("big.jpg"));
    jpeg(&small, 3000);
    jpeg(&big, 8 * 1024 * 1024 + 100);
    let python = std::env::var("TARN_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .arg(&path)
        .arg("photos")
        .arg(&small)
        .arg(&big)
        .env("TARN_URL", &s.base)
        .env("TARN_TOKEN", &token)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in &lines {
        assert_eq!(l["status"], 200, "{l}");
        let id = l["id"].as_str().unwrap();
        let st = status(&s, &token, id).await;
        assert_eq!(st["data"]["id"], id, "{st}");
        assert_eq!(st["data"]["content_type"], "image/jpeg", "{st}");
    }
}

/// A front that forwards every request to `upstream`, but answers the first POST of a document
/// 502 after forwarding it: the document landed, its answer was lost.
async fn lossy_front(upstream: String) -> String {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let lost = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (client, upstream, lost) = (client.clone(), upstream.clone(), lost.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let mut fwd = client.request(parts.method.clone(), format!("{upstream}{}", parts.uri));
            for (k, v) in &parts.headers {
                if k != "host" {
                    fwd = fwd.header(k, v);
                }
            }
            let resp = fwd.body(body).send().await.unwrap();
            let status = resp.status();
            let bytes = resp.bytes().await.unwrap();
            if parts.method == "POST"
                && parts.uri.path().ends_with("/object")
                && !lost.swap(true, Ordering::SeqCst)
            {
                return Response::builder()
                    .status(502)
                    .body(Body::from("bad gateway"))
                    .unwrap();
            }
            Response::builder()
                .status(status.as_u16())
                .header("content-type", "application/json")
                .body(Body::from(bytes))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_retried_under_the_same_key_and_lands_once() {
    let s = serve().await;
    let token = writer_token(&s);
    let front = lossy_front(s.base.clone()).await;
    let files = tempfile::tempdir().unwrap();
    let photo = files.path().join("one.jpg");
    jpeg(&photo, 1500);
    let out = tarn(&[
        "ingest",
        "--url",
        &front,
        "--token",
        &token,
        "--table",
        "photos",
        "--format",
        "json",
        &photo.display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows[0]["replayed"], true,
        "the retry found the first landing: {}",
        rows[0]
    );
    assert!(
        stderr.contains("sent 1 of 1 (1500 bytes), 1 replays, 0 refused"),
        "{stderr}"
    );
    // one document: its status is there, under the id the retry answered
    let id = rows[0]["id"].as_str().unwrap();
    let st = status(&s, &token, id).await;
    assert_eq!(st["data"]["id"], id, "{st}");
    let landed_or_processed = std::fs::read_dir(Path::new(&s.data_dir).join("ingress"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("id="))
                .count()
        })
        .unwrap_or(0);
    assert!(landed_or_processed <= 1, "never a second landing");
}
