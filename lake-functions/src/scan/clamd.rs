//! [`ClamdScanner`]: ClamAV's daemon, spoken to in its own protocol over TCP or a unix socket.
//!
//! Commands are the null-terminated `z` forms: `zPING` → `PONG`, `zVERSION` →
//! `ClamAV 1.4.2/27000/<date>`, and `zINSTREAM` followed by the body in chunks, each prefixed
//! with its length as 4 big-endian bytes, ended by a zero length; the answer is `stream: OK`,
//! `stream: <signature> FOUND` or `<reason> ERROR`. Every answer ends with a NUL byte.
//!
//! clamd closes a connection after one command unless the client opens a session with
//! `zIDSESSION`; inside a session every answer is prefixed with the request's number
//! (`1: stream: OK`), counted from 1 per connection. The scanner keeps a few idle session
//! connections (`pool_size`) and runs one command at a time on each, checking every answer's
//! number against the request's. A reused session that does not give the request's answer
//! (clamd closed it: after its `ReadTimeout` idle it sends `COMMAND READ TIMED OUT` and closes;
//! a restart) is dropped and the command is sent again on another connection (scans are
//! idempotent, and the new connection's answer is checked just as strictly); sessions idle for
//! longer than [`DEFAULT_SESSION_MAX_IDLE`] (configurable) are not reused at all. Failures on a
//! new connection are returned.
//! When clamd answers a session's first command without a number (a daemon that has no
//! sessions), the scanner falls back to one connection per command for good. A session is put
//! back in the pool only after an answer that was understood and was not an error.
//!
//! The body is written straight from the caller's slice (vectored writes of a length prefix
//! and a slice of the body: no copy), while the answer is read at the same time: clamd answers
//! `INSTREAM size limit exceeded. ERROR` and closes the connection as soon as the stream goes
//! over its `StreamMaxLength`, and that answer is reported rather than the broken pipe.
//! Every command, retries included, is bounded by [`Timeouts::scan`]; every connect by
//! [`Timeouts::connect`].

use super::{EngineVersion, ScanError, ScanVerdict, Scanner};
use async_trait::async_trait;
use std::io::{self, IoSlice};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tracing::{debug, warn};

/// The size of the chunks a body is streamed in.
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;
/// How many idle session connections are kept: the pipeline runner's default concurrency, so a
/// busy runner reuses sessions rather than opening connections (idle sessions hold no clamd
/// thread).
pub const DEFAULT_POOL_SIZE: usize = 8;
/// Sessions idle for longer are closed rather than reused (clamd ends a session idle for its
/// `ReadTimeout`, 120 s by default).
pub const DEFAULT_SESSION_MAX_IDLE: Duration = Duration::from_secs(10);
/// The longest answer clamd gives is a signature name with a prefix; more is not clamd.
const MAX_REPLY: usize = 4096;
/// The largest chunk: clamd reads a chunk into memory whole.
const MAX_CHUNK_SIZE: usize = 8 << 20;
/// After a failed write, how long to wait for the answer clamd may have sent before closing.
const LATE_REPLY_WAIT: Duration = Duration::from_secs(2);

/// Where clamd listens: `tcp://host:port` or `unix:///absolute/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddr {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

impl FromStr for ClamdAddr {
    type Err = ScanError;

    fn from_str(s: &str) -> Result<Self, ScanError> {
        let bad = |reason: &str| ScanError::Address {
            addr: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = s.strip_prefix("tcp://") {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("expected tcp://host:port"))?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if host.is_empty() || host.contains('/') {
                return Err(bad("expected tcp://host:port"));
            }
            let port: u16 = port
                .parse()
                .map_err(|_| bad("the port is not a number from 1 to 65535"))?;
            if port == 0 {
                return Err(bad("the port is not a number from 1 to 65535"));
            }
            Ok(ClamdAddr::Tcp {
                host: host.to_string(),
                port,
            })
        } else if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') || path.len() < 2 {
                return Err(bad("expected unix:///absolute/path"));
            }
            Ok(ClamdAddr::Unix(PathBuf::from(path)))
        } else {
            Err(bad("expected tcp://host:port or unix:///absolute/path"))
        }
    }
}

impl std::fmt::Display for ClamdAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClamdAddr::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            ClamdAddr::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            ClamdAddr::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// Bounds on the time a call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// one connection attempt
    pub connect: Duration,
    /// one whole command: connecting, sending the body, clamd's scan and its answer, retries
    pub scan: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            scan: Duration::from_secs(60),
        }
    }
}

/// A [`Scanner`] backed by clamd. Cheap to share (`Arc`); safe to use from many tasks at once.
pub struct ClamdScanner {
    addr: ClamdAddr,
    addr_text: String,
    timeouts: Timeouts,
    chunk_size: usize,
    pool_size: usize,
    session_max_idle: Duration,
    idle: Mutex<Vec<Session>>,
    sessions: AtomicBool,
    opened: AtomicU64,
}

impl std::fmt::Debug for ClamdScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClamdScanner")
            .field("addr", &self.addr_text)
            .field("timeouts", &self.timeouts)
            .field("chunk_size", &self.chunk_size)
            .field("pool_size", &self.pool_size)
            .field("idle_sessions", &self.idle_sessions())
            .field("sessions", &self.sessions_enabled())
            .finish()
    }
}

impl ClamdScanner {
    /// A scanner for clamd at `addr` (`tcp://127.0.0.1:3310`, `unix:///run/clamd.sock`). Only the
    /// address is checked here: connections are made when needed, so a clamd that is down now
    /// is not an error until a call (use [`Scanner::ping`] to check it at start).
    pub fn connect(addr: &str, timeouts: Timeouts) -> Result<Self, ScanError> {
        Ok(Self::new(addr.parse()?, timeouts))
    }

    pub fn new(addr: ClamdAddr, timeouts: Timeouts) -> Self {
        Self {
            addr_text: addr.to_string(),
            addr,
            timeouts,
            chunk_size: DEFAULT_CHUNK_SIZE,
            pool_size: DEFAULT_POOL_SIZE,
            session_max_idle: DEFAULT_SESSION_MAX_IDLE,
            idle: Mutex::new(Vec::new()),
            sessions: AtomicBool::new(true),
            opened: AtomicU64::new(0),
        }
    }

    /// Keep at most `n` idle session connections; 0 opens one connection per command.
    pub fn with_pool_size(mut self, n: usize) -> Self {
        self.pool_size = n;
        self
    }

    /// Do not reuse a session idle for longer than this (keep it under clamd's `IdleTimeout`; a
    /// session clamd closed anyway costs one retry on a new connection).
    pub fn with_session_max_idle(mut self, d: Duration) -> Self {
        self.session_max_idle = d;
        self
    }

    /// Stream bodies in chunks of `n` bytes (clamped to 1 byte ..= 8 MiB).
    pub fn with_chunk_size(mut self, n: usize) -> Self {
        self.chunk_size = n.clamp(1, MAX_CHUNK_SIZE);
        self
    }

    pub fn addr(&self) -> &ClamdAddr {
        &self.addr
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Idle session connections in the pool now.
    pub fn idle_sessions(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Connections opened so far (sessions and single commands), successful or not.
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// False once clamd showed it has no sessions (then every command has its own connection).
    pub fn sessions_enabled(&self) -> bool {
        self.pool_size > 0 && self.sessions.load(Ordering::Relaxed)
    }

    async fn open(&self) -> Result<Conn, ScanError> {
        self.opened.fetch_add(1, Ordering::Relaxed);
        let connect = async {
            match &self.addr {
                ClamdAddr::Tcp { host, port } => {
                    let s = TcpStream::connect((host.as_str(), *port)).await?;
                    // a command is a few small writes followed by a wait for the answer
                    s.set_nodelay(true)?;
                    Ok::<_, io::Error>(Conn::Tcp(s))
                }
                ClamdAddr::Unix(path) => Ok(Conn::Unix(UnixStream::connect(path).await?)),
            }
        };
        match tokio::time::timeout(self.timeouts.connect, connect).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(source)) => Err(ScanError::Connect {
                addr: self.addr_text.clone(),
                source,
            }),
            Err(_) => Err(ScanError::ConnectTimeout {
                addr: self.addr_text.clone(),
                after: self.timeouts.connect,
            }),
        }
    }

    async fn open_session(&self) -> Result<Session, ScanError> {
        let mut conn = self.open().await?;
        // clamd does not answer IDSESSION itself; a daemon without sessions answers the next command unnumbered
        conn.send(&self.addr_text, b"zIDSESSION\0").await?;
        Ok(Session {
            conn,
            next_id: 1,
            idle_since: Instant::now(),
        })
    }

    fn take_idle(&self) -> Option<Session> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(s) = idle.pop() {
            if s.idle_since.elapsed() < self.session_max_idle {
                return Some(s);
            }
        }
        None
    }

    fn give_back(&self, mut s: Session) {
        s.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.pool_size {
            idle.push(s);
        }
    }

    /// Sends `cmd`, reads its answer and parses it with `parse`, within [`Timeouts::scan`].
    async fn request<T>(
        &self,
        cmd: Command<'_>,
        parse: fn(&Reply) -> Result<T, ScanError>,
    ) -> Result<T, ScanError> {
        let after = self.timeouts.scan;
        match tokio::time::timeout(after, self.request_untimed(cmd, parse)).await {
            Ok(r) => r,
            Err(_) => Err(ScanError::Timeout {
                addr: self.addr_text.clone(),
                after,
            }),
        }
    }

    async fn request_untimed<T>(
        &self,
        cmd: Command<'_>,
        parse: fn(&Reply) -> Result<T, ScanError>,
    ) -> Result<T, ScanError> {
        if self.sessions_enabled() {
            while let Some(mut s) = self.take_idle() {
                match s.request(self, cmd).await {
                    Ok(Numbered::Yes(reply)) => {
                        let out = parse(&reply);
                        if out.is_ok() {
                            self.give_back(s);
                        }
                        return out;
                    }
                    // anything but this request's answer: most likely clamd ended the session
                    // while it was idle (closed it, or sent `COMMAND READ TIMED OUT` and closed
                    // it after its ReadTimeout); the command goes again on another connection
                    Ok(Numbered::No(reply)) => {
                        debug!(answer = %reply.text, "dropping a clamd session that answered unnumbered");
                    }
                    Err(e) => debug!(error = %e, "dropping a broken clamd session"),
                }
            }
            let mut s = self.open_session().await?;
            match s.request(self, cmd).await? {
                Numbered::Yes(reply) => {
                    let out = parse(&reply);
                    if out.is_ok() {
                        self.give_back(s);
                    }
                    return out;
                }
                Numbered::No(reply) => {
                    drop(s);
                    let out = self.request_single(cmd, parse).await;
                    if out.is_ok() {
                        warn!(addr = %self.addr_text, answer = %reply.text, "clamd has no sessions: one connection per command from now on");
                        self.sessions.store(false, Ordering::Relaxed);
                    }
                    return out;
                }
            }
        }
        self.request_single(cmd, parse).await
    }

    async fn request_single<T>(
        &self,
        cmd: Command<'_>,
        parse: fn(&Reply) -> Result<T, ScanError>,
    ) -> Result<T, ScanError> {
        let mut conn = self.open().await?;
        let reply = conn.exchange(&self.addr_text, cmd, self.chunk_size).await?;
        parse(&reply)
    }
}

#[async_trait]
impl Scanner for ClamdScanner {
    async fn scan(&self, body: &[u8]) -> Result<ScanVerdict, ScanError> {
        self.request(Command::Instream(body), parse_instream).await
    }

    async fn version(&self) -> Result<EngineVersion, ScanError> {
        self.request(Command::Version, |r| parse_version(&r.text))
            .await
    }

    async fn ping(&self) -> Result<(), ScanError> {
        self.request(Command::Ping, |r| parse_pong(&r.text)).await
    }
}

#[derive(Debug, Clone, Copy)]
enum Command<'a> {
    Ping,
    Version,
    Instream(&'a [u8]),
}

impl Command<'_> {
    fn name(&self) -> &'static str {
        match self {
            Command::Ping => "PING",
            Command::Version => "VERSION",
            Command::Instream(_) => "INSTREAM",
        }
    }
}

/// One answer, without its NUL (and, in a session, without its number).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    text: String,
    /// clamd answered before the whole stream was sent
    early: bool,
}

enum Numbered {
    Yes(Reply),
    No(Reply),
}

struct Session {
    conn: Conn,
    next_id: u64,
    idle_since: Instant,
}

impl Session {
    async fn request(
        &mut self,
        scanner: &ClamdScanner,
        cmd: Command<'_>,
    ) -> Result<Numbered, ScanError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut reply = self
            .conn
            .exchange(&scanner.addr_text, cmd, scanner.chunk_size)
            .await?;
        match strip_number(&reply.text) {
            Some((n, rest)) if n == id => {
                reply.text = rest.to_string();
                Ok(Numbered::Yes(reply))
            }
            Some((n, _)) => Err(ScanError::Protocol(format!(
                "answer numbered {n} to request {id}: {}",
                reply.text
            ))),
            None => Ok(Numbered::No(reply)),
        }
    }
}

/// `12: stream: OK` → (12, `stream: OK`)
fn strip_number(text: &str) -> Option<(u64, &str)> {
    let (n, rest) = text.split_once(": ")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((n.parse().ok()?, rest))
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    async fn send(&mut self, addr: &str, bytes: &[u8]) -> Result<(), ScanError> {
        let r = match self {
            Conn::Tcp(s) => s.write_all(bytes).await,
            Conn::Unix(s) => s.write_all(bytes).await,
        };
        r.map_err(|source| ScanError::Io {
            addr: addr.to_string(),
            source,
        })
    }

    /// Sends one command and reads its answer (in a session clamd numbers it itself).
    async fn exchange(
        &mut self,
        addr: &str,
        cmd: Command<'_>,
        chunk: usize,
    ) -> Result<Reply, ScanError> {
        let prefix = format!("z{}\0", cmd.name());
        let body = match cmd {
            Command::Instream(body) => Some(body),
            _ => None,
        };
        match self {
            Conn::Tcp(s) => {
                let (r, w) = s.split();
                exchange(r, w, addr, prefix.as_bytes(), body, chunk).await
            }
            Conn::Unix(s) => {
                let (r, w) = s.split();
                exchange(r, w, addr, prefix.as_bytes(), body, chunk).await
            }
        }
    }
}

async fn exchange<R, W>(
    mut rd: R,
    mut wr: W,
    addr: &str,
    prefix: &[u8],
    body: Option<&[u8]>,
    chunk: usize,
) -> Result<Reply, ScanError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let io_err = |source| ScanError::Io {
        addr: addr.to_string(),
        source,
    };
    let Some(body) = body else {
        wr.write_all(prefix).await.map_err(io_err)?;
        let text = read_reply(&mut rd, addr).await?;
        return Ok(Reply { text, early: false });
    };
    let write = async {
        write_stream(&mut wr, prefix, body, chunk).await?;
        wr.flush().await
    };
    let read = read_reply(&mut rd, addr);
    tokio::pin!(write, read);
    tokio::select! {
        biased;
        answer = &mut read => Ok(Reply { text: answer?, early: true }),
        written = &mut write => match written {
            Ok(()) => Ok(Reply { text: read.await?, early: false }),
            // clamd may have answered (size limit) and closed: its answer says more than the broken pipe
            Err(e) => match tokio::time::timeout(LATE_REPLY_WAIT, &mut read).await {
                Ok(Ok(text)) => Ok(Reply { text, early: true }),
                _ => Err(io_err(e)),
            },
        },
    }
}

/// `prefix`, then `body` in length-prefixed chunks, then the zero-length end, in as few writes
/// as the socket takes, straight from `body`.
async fn write_stream<W: AsyncWrite + Unpin>(
    w: &mut W,
    prefix: &[u8],
    body: &[u8],
    chunk: usize,
) -> io::Result<()> {
    const END: [u8; 4] = [0; 4];
    if body.is_empty() {
        return write_all_vectored(w, &mut [IoSlice::new(prefix), IoSlice::new(&END)]).await;
    }
    let count = body.len().div_ceil(chunk);
    for (i, part) in body.chunks(chunk).enumerate() {
        let len = u32::try_from(part.len())
            .expect("chunks are at most 8 MiB")
            .to_be_bytes();
        let first: &[u8] = if i == 0 { prefix } else { &[] };
        let last: &[u8] = if i + 1 == count { &END } else { &[] };
        write_all_vectored(
            w,
            &mut [
                IoSlice::new(first),
                IoSlice::new(&len),
                IoSlice::new(part),
                IoSlice::new(last),
            ],
        )
        .await?;
    }
    Ok(())
}

async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut bufs: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = w.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// Reads one NUL-terminated answer. Bytes after the NUL mean the connection is out of step
/// (clamd sends nothing unasked), so they are an error too.
async fn read_reply<R: AsyncRead + Unpin>(rd: &mut R, addr: &str) -> Result<String, ScanError> {
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 512];
    loop {
        let n = match rd.read(&mut chunk).await {
            Ok(n) => n,
            Err(source) if buf.is_empty() => {
                return Err(ScanError::Io {
                    addr: addr.to_string(),
                    source,
                });
            }
            Err(e) => {
                return Err(ScanError::Protocol(format!(
                    "{e} after a partial answer {:?}",
                    lossy(&buf)
                )));
            }
        };
        if n == 0 {
            return Err(if buf.is_empty() {
                ScanError::Closed
            } else {
                ScanError::Protocol(format!(
                    "connection closed in the middle of the answer {:?}",
                    lossy(&buf)
                ))
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.iter().position(|b| *b == 0) {
            if end + 1 != buf.len() {
                return Err(ScanError::Protocol(format!(
                    "bytes after the answer {:?}",
                    lossy(&buf)
                )));
            }
            buf.truncate(end);
            return String::from_utf8(buf).map_err(|e| ScanError::Protocol(lossy(e.as_bytes())));
        }
        if buf.len() > MAX_REPLY {
            return Err(ScanError::Protocol(format!(
                "an answer longer than {MAX_REPLY} bytes: {:?}...",
                lossy(&buf[..64])
            )));
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An answer ending in `ERROR` is clamd's refusal: `INSTREAM size limit exceeded. ERROR`.
fn refusal(text: &str) -> Option<ScanError> {
    let reason = text.strip_suffix("ERROR")?;
    let reason = reason.trim_end().trim_end_matches('.');
    let reason = reason.strip_prefix("stream: ").unwrap_or(reason).trim();
    Some(ScanError::Refused(if reason.is_empty() {
        "error".into()
    } else {
        reason.to_string()
    }))
}

fn parse_pong(text: &str) -> Result<(), ScanError> {
    match text {
        "PONG" => Ok(()),
        other => Err(refusal(other).unwrap_or_else(|| ScanError::Protocol(other.to_string()))),
    }
}

/// `ClamAV 1.4.2/27000/Mon Nov 24 09:35:02 2026`, or `ClamAV 1.4.2` when no official database
/// is loaded.
fn parse_version(text: &str) -> Result<EngineVersion, ScanError> {
    if let Some(e) = refusal(text) {
        return Err(e);
    }
    let bad = || ScanError::Protocol(text.to_string());
    let (product, rest) = text.split_once(' ').ok_or_else(bad)?;
    if !product.eq_ignore_ascii_case("clamav") {
        return Err(bad());
    }
    let mut parts = rest.splitn(3, '/');
    let version = parts.next().filter(|v| is_token(v)).ok_or_else(bad)?;
    let database = match parts.next() {
        None => None,
        Some(db) if is_token(db) => Some(db.to_string()),
        Some(_) => return Err(bad()),
    };
    Ok(EngineVersion {
        engine: "clamav".into(),
        version: version.to_string(),
        database,
    })
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// The prefixes of the names clamd gives what it could not look into (with `AlertExceedsMax`
/// and `AlertEncrypted`): a part past `MaxFileSize`, `MaxScanSize`, `MaxRecursion`, `MaxFiles`
/// or `MaxScanTime` (`Heuristics.Limits.Exceeded.MaxFileSize`), an encrypted archive or document
/// (`Heuristics.Encrypted.Zip`, `Heuristics.Encrypted.PDF`).
const UNSCANNABLE: &[&str] = &["Heuristics.Limits.Exceeded", "Heuristics.Encrypted"];

/// `stream: OK`, `stream: <signature> FOUND`, or a refusal. Anything else is not understood,
/// and an answer that came before the whole stream was sent cannot be clean. A "signature" of
/// [`UNSCANNABLE`] is [`ScanVerdict::Unscannable`].
fn parse_instream(reply: &Reply) -> Result<ScanVerdict, ScanError> {
    let text = reply.text.as_str();
    if let Some(e) = refusal(text) {
        return Err(e);
    }
    let unexpected = || ScanError::Protocol(text.to_string());
    let rest = text.strip_prefix("stream: ").ok_or_else(unexpected)?;
    if rest == "OK" {
        if reply.early {
            return Err(ScanError::Protocol(format!(
                "{text} before the end of the stream"
            )));
        }
        return Ok(ScanVerdict::Clean);
    }
    let name = rest.strip_suffix(" FOUND").ok_or_else(unexpected)?;
    if !is_token(name) {
        return Err(unexpected());
    }
    if UNSCANNABLE.iter().any(|p| name.starts_with(p)) {
        return Ok(ScanVerdict::Unscannable(name.to_string()));
    }
    Ok(ScanVerdict::Infected(name.to_string()))
}

#[cfg(test)]
mod tests;
