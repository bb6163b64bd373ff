//! A real ingress on an ephemeral 127.0.0.1 port, over real local stores and KMS in a tempdir.
#![allow(dead_code)]

pub mod cases;

#[allow(unused_imports)]
pub use cases::{BINARY_TABLE, JSON_TABLE, specs};

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tarn_core::{Clock, LocalKms, LocalObjectStore, ManualClock};
use tarn_ingress::{DevIssuer, IngressState, ServeConfig, router, serve_with, table_map};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

/// The harness clock's time, as `request-time` renders it.
pub const NOW: &str = "2030-01-02T03:04:05.678Z";

pub struct Options {
    pub max_in_flight: usize,
    pub with_issuer: bool,
    /// the server's timeouts and connection cap
    pub serve: ServeConfig,
    /// serve the content of documents stored without a scan
    pub serve_unscanned: bool,
    /// the declared tables (the cases' by default)
    pub tables: Vec<tarn_catalog::TableSpec>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_in_flight: 8,
            with_issuer: true,
            serve: ServeConfig::default(),
            serve_unscanned: false,
            tables: specs(),
        }
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub base: String,
    pub issuer: Arc<DevIssuer>,
    pub clock: Arc<ManualClock>,
    pub ingress: Arc<LocalObjectStore>,
    pub lake: Arc<LocalObjectStore>,
    pub state: Arc<LocalObjectStore>,
    pub kms: Arc<LocalKms>,
    pub notify: Arc<Notify>,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap()
                + chrono::Duration::milliseconds(678),
        ));
        let issuer = Arc::new(
            DevIssuer::open_or_create(root)
                .unwrap()
                .with_clock(clock.clone()),
        );
        let ingress =
            Arc::new(LocalObjectStore::open("tarn-ingress", root.join("ingress")).unwrap());
        let lake = Arc::new(LocalObjectStore::open("tarn-lake", root.join("lake")).unwrap());
        let state = Arc::new(LocalObjectStore::open("tarn-state", root.join("state")).unwrap());
        let kms = Arc::new(LocalKms::open_or_create(LocalKms::path_in(root)).unwrap());
        let notify = Arc::new(Notify::new());
        let ingress_state = IngressState {
            tables: table_map(opts.tables),
            ingress: ingress.clone(),
            lake: lake.clone(),
            state: state.clone(),
            kms: kms.clone(),
            verifier: Arc::new(issuer.verifier(clock.clone())),
            issuer: opts.with_issuer.then(|| issuer.clone()),
            clock: clock.clone(),
            notify: Some(notify.clone()),
            max_in_flight: opts.max_in_flight,
            serve_unscanned: opts.serve_unscanned,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_with(
            listener,
            router(ingress_state),
            async {
                let _ = rx.await;
            },
            opts.serve,
        ));
        Harness {
            dir,
            addr,
            base: format!("http://{addr}"),
            issuer,
            clock,
            ingress,
            lake,
            state,
            kms,
            notify,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Signals shutdown and waits (bounded) for the server to stop.
    pub async fn stop(&mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let server = self.server.take().expect("server running");
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("server stops in time")
            .unwrap()
    }

    pub fn token(&self, user: &str, groups: &[&str]) -> String {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        self.issuer
            .mint(user, &groups, Duration::from_secs(3600))
            .unwrap()
    }

    /// The claims a minted token would carry now, to alter before signing.
    pub fn claims(&self, user: &str, groups: &[&str]) -> Value {
        let now = self.clock.now().timestamp();
        json!({
            "iss": tarn_ingress::DEV_ISSUER, "sub": DevIssuer::subject(user), "aud": tarn_ingress::DEV_CLIENT_ID,
            "token_use": "id", "cognito:username": user, "cognito:groups": groups,
            "iat": now, "auth_time": now, "exp": now + 3600,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `POST /table/{table}/object` with `Authorization: Bearer <token>`.
    pub async fn post(
        &self,
        table: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut req = self
            .client
            .post(self.url(&format!("/table/{table}/object")))
            .body(body);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        Reply::from(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        Reply::from(req.send().await.unwrap()).await
    }

    /// Posts a JSON document as a writer and returns its id.
    pub async fn land_json(&self, user: &str, body: &str) -> String {
        let token = self.token(user, &["tarn-writers"]);
        let r = self
            .post(
                JSON_TABLE,
                Some(&token),
                Some("application/json"),
                body.to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["data"]["id"].as_str().unwrap().to_string()
    }

    /// Keys in the ingress store.
    pub async fn landed(&self) -> Vec<String> {
        use tarn_core::ObjectStore;
        self.ingress
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect()
    }

    /// Sends raw bytes on a fresh connection and reads the reply until the server closes.
    pub async fn raw(&self, request: &[u8]) -> Reply {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        s.write_all(request).await.unwrap();
        read_reply(&mut s).await
    }
}

/// The real pipeline over the harness's stores (the local runner with validation).
pub fn pipeline(h: &Harness, tables: Vec<tarn_catalog::TableSpec>) -> tarn_lake::Pipeline {
    let validate = std::sync::Arc::new(tarn_lake::validate::Validate::new(&tables).unwrap());
    pipeline_with(h, tables, vec![validate])
}

/// The real pipeline over the harness's stores, with the given stages.
pub fn pipeline_with(
    h: &Harness,
    tables: Vec<tarn_catalog::TableSpec>,
    stages: Vec<std::sync::Arc<dyn tarn_lake::Stage>>,
) -> tarn_lake::Pipeline {
    let lake = lake_of(h, tables);
    tarn_lake::Pipeline::new(lake, stages, tarn_lake::PipelineConfig::default())
}

/// Rows in the Parquet files under `tables/<table>/` of the lake.
pub fn rows(h: &Harness, table: &str) -> i64 {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut n = 0;
    let mut stack = vec![h.lake.root().join("tables").join(table)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let r = SerializedFileReader::new(std::fs::File::open(&p).unwrap()).unwrap();
                n += r.metadata().file_metadata().num_rows();
            }
        }
    }
    n
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A response of a request built with the harness's client.
    pub async fn from_response(r: reqwest::Response) -> Reply {
        Self::from(r).await
    }

    async fn from(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = r.bytes().await.unwrap().to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not json ({e}): {}", self.text()))
    }

    /// `error.code` of an error reply, checking the error shape on the way.
    pub fn code(&self) -> String {
        let v = self.json();
        assert_eq!(v["success"], false, "{v}");
        let msg = v["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {v}"));
        assert!(!msg.is_empty() && !msg.ends_with('.'), "{msg}");
        v["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no code: {v}"))
            .to_string()
    }

    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Asserts status and error code.
    #[track_caller]
    pub fn expect(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.code(), code, "{}", self.text());
    }
}

/// Reads an HTTP/1.1 response until the server closes the connection (bounded in time).
pub async fn read_reply(s: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("a reply in time")
        .unwrap();
    parse_reply(&buf)
}

/// Reads exactly one response (headers and a Content-Length body) without waiting for a close.
pub async fn read_one_reply(s: &mut (impl AsyncRead + Unpin)) -> Reply {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return;
                }
            }
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before a whole reply");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("a reply in time");
    parse_reply(&buf)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_reply(buf: &[u8]) -> Reply {
    let end = find(buf, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no http head in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
    }
}

/// The head of a chunked POST (no Content-Length).
pub fn chunked_head(table: &str, token: &str, content_type: &str) -> String {
    format!(
        "POST /table/{table}/object HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
}

/// One chunk of a chunked body.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Raises this process's soft limit on open files to at least `n` (up to the hard limit), for
/// tests that hold many connections; panics when the hard limit is lower.
pub fn ensure_open_files(n: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    if now.current.is_none_or(|c| c >= n) {
        return;
    }
    assert!(
        now.maximum.is_none_or(|m| m >= n),
        "this test needs {n} open files; the hard limit is {:?}",
        now.maximum
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(n),
            maximum: now.maximum,
        },
    )
    .unwrap();
}

/// The lake under the harness's stores, as the pipeline works with it (its quarantine, catalog
/// and locks beside them in the harness's dir).
pub fn lake(h: &Harness) -> tarn_lake::Lake {
    lake_of(h, specs())
}

/// The lake over the harness's stores, with `tables`.
pub fn lake_of(h: &Harness, tables: Vec<tarn_catalog::TableSpec>) -> tarn_lake::Lake {
    let root = h.dir.path();
    tarn_lake::Lake::new(tarn_lake::LakeParts {
        tables,
        ingress: h.ingress.clone(),
        lake: h.lake.clone(),
        quarantine: Arc::new(
            tarn_core::LocalObjectStore::open("tarn-quarantine", root.join("quarantine")).unwrap(),
        ),
        state: h.state.clone(),
        kms: h.kms.clone(),
        catalog: Arc::new(tarn_catalog::LocalCatalog::open(root.join("catalog")).unwrap()),
        database: "tarn".into(),
        clock: Arc::new(tarn_core::SystemClock),
        lock: Arc::new(tarn_lake::lock::LocalLakeLock::open(root.join("locks")).unwrap()),
    })
}
