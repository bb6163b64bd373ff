//! Answer parsing, and the client against a fake clamd in this process: a small TCP server that
//! speaks the protocol (sessions, numbered answers, length-prefixed streams) and misbehaves on
//! demand, to check that no failure is ever taken for clean.

use super::*;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use tokio::net::TcpListener;

fn reply(text: &str) -> Reply {
    Reply {
        text: text.into(),
        early: false,
    }
}

#[test]
fn addresses() {
    assert_eq!(
        "tcp://127.0.0.1:3310".parse::<ClamdAddr>().unwrap(),
        ClamdAddr::Tcp {
            host: "127.0.0.1".into(),
            port: 3310
        }
    );
    assert_eq!(
        "tcp://[::1]:3310".parse::<ClamdAddr>().unwrap(),
        ClamdAddr::Tcp {
            host: "::1".into(),
            port: 3310
        }
    );
    assert_eq!(
        "tcp://[::1]:3310".parse::<ClamdAddr>().unwrap().to_string(),
        "tcp://[::1]:3310"
    );
    assert_eq!(
        "unix:///run/clamav/clamd.ctl".parse::<ClamdAddr>().unwrap(),
        ClamdAddr::Unix("/run/clamav/clamd.ctl".into())
    );
    assert_eq!(
        "unix:///x.sock".parse::<ClamdAddr>().unwrap().to_string(),
        "unix:///x.sock"
    );
    for bad in [
        "",
        "127.0.0.1:3310",
        "tcp://127.0.0.1",
        "tcp://:3310",
        "tcp://h:0",
        "tcp://h:70000",
        "unix://rel",
        "unix://",
        "http://h:1",
    ] {
        let e = bad.parse::<ClamdAddr>().unwrap_err();
        assert!(matches!(e, ScanError::Address { .. }), "{bad}: {e}");
    }
    assert!(ClamdScanner::connect("nope", Timeouts::default()).is_err());
}

#[test]
fn instream_answers() {
    assert_eq!(
        parse_instream(&reply("stream: OK")).unwrap(),
        ScanVerdict::Clean
    );
    assert_eq!(
        parse_instream(&reply("stream: Eicar-Test-Signature.UNOFFICIAL FOUND")).unwrap(),
        ScanVerdict::Infected("Eicar-Test-Signature.UNOFFICIAL".into())
    );
    assert_eq!(
        parse_instream(&reply(
            "stream: Win.Test.EICAR_HDB-1(44d88612fea8a8f36de82e1278abb02f:68) FOUND"
        ))
        .unwrap(),
        ScanVerdict::Infected("Win.Test.EICAR_HDB-1(44d88612fea8a8f36de82e1278abb02f:68)".into())
    );
    // what clamd could not look into (AlertExceedsMax, AlertEncrypted) is not a detection
    for name in [
        "Heuristics.Limits.Exceeded.MaxFileSize",
        "Heuristics.Limits.Exceeded.MaxRecursion",
        "Heuristics.Limits.Exceeded.MaxScanSize",
        "Heuristics.Encrypted.Zip",
        "Heuristics.Encrypted.PDF",
    ] {
        assert_eq!(
            parse_instream(&reply(&format!("stream: {name} FOUND"))).unwrap(),
            ScanVerdict::Unscannable(name.into())
        );
    }
    // other heuristics are detections
    assert_eq!(
        parse_instream(&reply(
            "stream: Heuristics.Phishing.Email.SpoofedDomain FOUND"
        ))
        .unwrap(),
        ScanVerdict::Infected("Heuristics.Phishing.Email.SpoofedDomain".into())
    );
    match parse_instream(&reply("INSTREAM size limit exceeded. ERROR")) {
        Err(ScanError::Refused(r)) => assert_eq!(r, "INSTREAM size limit exceeded"),
        other => panic!("{other:?}"),
    }
    match parse_instream(&reply("stream: Can't allocate memory ERROR")) {
        Err(ScanError::Refused(r)) => assert_eq!(r, "Can't allocate memory"),
        other => panic!("{other:?}"),
    }
    // everything else is not understood, and not clean
    for text in [
        "",
        "OK",
        "stream: ok",
        "stream: OK ",
        " stream: OK",
        "stream:OK",
        "stream: FOUND",
        "stream:  FOUND",
        "stream: two words FOUND",
        "stream: OK FOUND extra",
        "UNKNOWN COMMAND",
        "PONG",
        "stream: OK\nstream: OK",
    ] {
        let got = parse_instream(&reply(text));
        match got {
            Err(ScanError::Protocol(_)) => {}
            Ok(ScanVerdict::Infected(ref n)) if text == "stream: OK FOUND extra" => {
                panic!("{text:?} gave {n}")
            }
            other => panic!("{text:?}: expected a protocol error, got {other:?}"),
        }
    }
    // clamd does not say OK before it has the whole stream
    assert!(matches!(
        parse_instream(&Reply {
            text: "stream: OK".into(),
            early: true
        }),
        Err(ScanError::Protocol(_))
    ));
    // but an early detection or refusal stands
    assert!(matches!(
        parse_instream(&Reply {
            text: "stream: X FOUND".into(),
            early: true
        }),
        Ok(ScanVerdict::Infected(_))
    ));
    assert!(matches!(
        parse_instream(&Reply {
            text: "INSTREAM size limit exceeded. ERROR".into(),
            early: true
        }),
        Err(ScanError::Refused(_))
    ));
}

#[test]
fn version_and_pong_answers() {
    let v = parse_version("ClamAV 1.4.2/27000/Mon Nov 24 09:35:02 2026").unwrap();
    assert_eq!(
        v,
        EngineVersion {
            engine: "clamav".into(),
            version: "1.4.2".into(),
            database: Some("27000".into())
        }
    );
    assert_eq!(v.to_string(), "clamav 1.4.2/27000");
    let v = parse_version("ClamAV 1.4.6").unwrap();
    assert_eq!(v.to_string(), "clamav 1.4.6");
    for bad in [
        "",
        "ClamAV",
        "ClamAV ",
        "Sophos 1.0",
        "ClamAV /27000/x",
        "COMMAND READ TIMED OUT ERROR",
    ] {
        assert!(parse_version(bad).is_err(), "{bad:?}");
    }
    parse_pong("PONG").unwrap();
    for bad in ["", "PONG ", "pong", "UNKNOWN COMMAND", "x ERROR"] {
        assert!(parse_pong(bad).is_err(), "{bad:?}");
    }
    assert!(matches!(parse_pong("x ERROR"), Err(ScanError::Refused(_))));
}

#[test]
fn numbered_answers() {
    assert_eq!(strip_number("1: stream: OK"), Some((1, "stream: OK")));
    assert_eq!(strip_number("42: PONG"), Some((42, "PONG")));
    assert_eq!(strip_number("stream: OK"), None);
    assert_eq!(strip_number("UNKNOWN COMMAND"), None);
    assert_eq!(strip_number(": PONG"), None);
    assert_eq!(strip_number("-1: PONG"), None);
}

// ---- the fake clamd ----

/// What the fake does with one command.
#[derive(Debug, Clone)]
enum Act {
    /// answer with this text (numbered in a session) and a NUL
    Answer(String),
    /// send these bytes as they are (no number, no NUL)
    Raw(Vec<u8>),
    /// send these bytes as they are, then close
    RawThenClose(Vec<u8>),
    /// close the connection without answering
    Close,
    /// answer right after the command, before reading the stream, then close
    AnswerEarly(String),
    /// never answer
    Hang,
}

#[derive(Debug, Clone)]
struct Request {
    command: String,
    body: Vec<u8>,
    /// the largest chunk the client sent
    max_chunk: usize,
    session: bool,
    /// commands on this connection so far, this one included
    nth: u64,
}

#[derive(Clone)]
struct Fake {
    addr: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Fake {
    async fn start(sessions: bool, act: impl Fn(&Request) -> Act + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Fake {
            addr: format!("tcp://{}", listener.local_addr().unwrap()),
            connections: Arc::new(AtomicUsize::new(0)),
            requests: Arc::new(Mutex::new(Vec::new())),
        };
        let act = Arc::new(act);
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                f.connections.fetch_add(1, Ordering::SeqCst);
                let (act, requests) = (act.clone(), f.requests.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, sessions, &*act, &requests).await;
                });
            }
        });
        fake
    }

    fn scanner(&self) -> ClamdScanner {
        ClamdScanner::connect(
            &self.addr,
            Timeouts {
                connect: Duration::from_secs(2),
                scan: Duration::from_secs(2),
            },
        )
        .unwrap()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

async fn read_command(sock: &mut TcpStream) -> io::Result<Option<String>> {
    let mut out = Vec::new();
    loop {
        let mut b = [0u8; 1];
        if sock.read(&mut b).await? == 0 {
            return Ok(None);
        }
        if b[0] == 0 {
            return Ok(Some(String::from_utf8_lossy(&out).into_owned()));
        }
        out.push(b[0]);
    }
}

async fn serve(
    mut sock: TcpStream,
    sessions: bool,
    act: &(dyn Fn(&Request) -> Act + Send + Sync),
    requests: &Mutex<Vec<Request>>,
) -> io::Result<()> {
    let mut session = false;
    let mut nth = 0;
    while let Some(command) = read_command(&mut sock).await? {
        if command == "zIDSESSION" && sessions && !session {
            session = true;
            continue;
        }
        nth += 1;
        let mut req = Request {
            command: command.clone(),
            body: Vec::new(),
            max_chunk: 0,
            session,
            nth,
        };
        // asked once before the stream (to answer early), once with it
        if let Act::AnswerEarly(text) = act(&req) {
            sock.write_all(format!("{text}\0").as_bytes()).await?;
            return Ok(());
        }
        if command == "zINSTREAM" {
            loop {
                let len = sock.read_u32().await? as usize;
                if len == 0 {
                    break;
                }
                req.max_chunk = req.max_chunk.max(len);
                let mut chunk = vec![0; len];
                sock.read_exact(&mut chunk).await?;
                req.body.extend_from_slice(&chunk);
            }
        }
        let action = act(&req);
        requests.lock().unwrap().push(req);
        match action {
            Act::Answer(text) => {
                let text = if session {
                    format!("{nth}: {text}\0")
                } else {
                    format!("{text}\0")
                };
                sock.write_all(text.as_bytes()).await?;
            }
            Act::Raw(bytes) => sock.write_all(&bytes).await?,
            Act::RawThenClose(bytes) => {
                sock.write_all(&bytes).await?;
                return Ok(());
            }
            Act::Close => return Ok(()),
            Act::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Act::AnswerEarly(_) => unreachable!(),
        }
        if !session {
            return Ok(());
        }
    }
    Ok(())
}

/// Answers like a clean clamd: PONG, a version, OK for every stream.
fn clean_clamd(r: &Request) -> Act {
    match r.command.as_str() {
        "zPING" => Act::Answer("PONG".into()),
        "zVERSION" => Act::Answer("ClamAV 1.4.2/27000/Mon Nov 24 09:35:02 2026".into()),
        "zINSTREAM" if r.body.windows(5).any(|w| w == b"VIRUS") => {
            Act::Answer("stream: Fake.Virus FOUND".into())
        }
        "zINSTREAM" => Act::Answer("stream: OK".into()),
        _ => Act::Answer("UNKNOWN COMMAND".into()),
    }
}

#[tokio::test]
async fn streams_the_body_in_chunks_and_reuses_sessions() {
    let fake = Fake::start(true, clean_clamd).await;
    let scanner = fake.scanner().with_chunk_size(1000);
    scanner.ping().await.unwrap();
    assert_eq!(
        scanner.version().await.unwrap().to_string(),
        "clamav 1.4.2/27000"
    );
    let body: Vec<u8> = (0..10_500u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(scanner.scan(&body).await.unwrap(), ScanVerdict::Clean);
    assert_eq!(scanner.scan(b"").await.unwrap(), ScanVerdict::Clean);
    assert_eq!(
        scanner.scan(b"a VIRUS here").await.unwrap(),
        ScanVerdict::Infected("Fake.Virus".into())
    );
    assert_eq!(fake.connections(), 1, "one session for everything");
    assert_eq!(scanner.idle_sessions(), 1);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 5);
    assert!(reqs.iter().all(|r| r.session));
    assert_eq!(
        reqs.iter().map(|r| r.nth).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(reqs[2].body, body, "the stream reassembles to the body");
    assert_eq!(reqs[2].max_chunk, 1000);
    assert!(reqs[3].body.is_empty());
}

#[tokio::test]
async fn concurrent_scans_open_more_sessions_and_keep_a_few() {
    let fake = Fake::start(true, clean_clamd).await;
    let scanner = fake.scanner().with_pool_size(2);
    let bodies: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            if i % 2 == 0 {
                b"VIRUS".to_vec()
            } else {
                vec![b'x'; 200_000]
            }
        })
        .collect();
    let got = futures::future::join_all(bodies.iter().map(|b| scanner.scan(b))).await;
    for (i, v) in got.into_iter().enumerate() {
        let v = v.unwrap();
        assert_eq!(v == ScanVerdict::Clean, i % 2 == 1, "scan {i}: {v:?}");
    }
    assert!(scanner.idle_sessions() <= 2);
}

#[tokio::test]
async fn without_a_pool_every_command_has_its_own_connection() {
    let fake = Fake::start(true, clean_clamd).await;
    let scanner = fake.scanner().with_pool_size(0);
    for _ in 0..3 {
        assert_eq!(scanner.scan(b"x").await.unwrap(), ScanVerdict::Clean);
    }
    assert_eq!(fake.connections(), 3);
    assert!(fake.requests().iter().all(|r| !r.session));
}

#[tokio::test]
async fn falls_back_to_one_connection_per_command_without_sessions() {
    // like a clamd that has no IDSESSION: "UNKNOWN COMMAND" and close
    let fake = Fake::start(false, |r: &Request| {
        if r.command == "zIDSESSION" {
            Act::Answer("UNKNOWN COMMAND".into())
        } else {
            clean_clamd(r)
        }
    })
    .await;
    let scanner = fake.scanner();
    assert_eq!(scanner.scan(b"x").await.unwrap(), ScanVerdict::Clean);
    assert!(!scanner.sessions_enabled());
    assert_eq!(
        scanner.scan(b"VIRUS").await.unwrap(),
        ScanVerdict::Infected("Fake.Virus".into())
    );
    scanner.ping().await.unwrap();
    assert_eq!(
        fake.connections(),
        4,
        "the failed session, then one per command"
    );
}

#[tokio::test]
async fn a_session_closed_while_idle_is_replaced() {
    // the fake closes each session after its second command, without answering it
    let fake = Fake::start(true, |r: &Request| {
        if r.nth == 2 {
            Act::Close
        } else {
            clean_clamd(r)
        }
    })
    .await;
    let scanner = fake.scanner();
    for _ in 0..4 {
        assert_eq!(scanner.scan(b"x").await.unwrap(), ScanVerdict::Clean);
    }
    // every scan after the first finds its session closed, and opens another
    assert_eq!(fake.connections(), 4);
    assert_eq!(fake.requests().len(), 7);
}

async fn scan_error(what: &str, act: Act, size: usize, sessions: bool, pool: usize) -> ScanError {
    let fake = Fake::start(sessions, move |r: &Request| {
        if r.command == "zINSTREAM" {
            act.clone()
        } else {
            clean_clamd(r)
        }
    })
    .await;
    let scanner = fake.scanner().with_pool_size(pool);
    let got = scanner.scan(&vec![b'x'; size]).await;
    let err = match got {
        Ok(v) => panic!("{what} (sessions: {sessions}): must not be a verdict, got {v:?}"),
        Err(e) => e,
    };
    assert_eq!(
        scanner.idle_sessions(),
        0,
        "{what}: a failed session is not reused"
    );
    err
}

#[tokio::test]
async fn failures_are_never_clean() {
    let refused = |e: &ScanError| matches!(e, ScanError::Refused(_));
    let protocol = |e: &ScanError| matches!(e, ScanError::Protocol(_));
    let cases: Vec<(&str, Act, usize, fn(&ScanError) -> bool)> = vec![
        (
            "size limit",
            Act::Answer("INSTREAM size limit exceeded. ERROR".into()),
            300_000,
            |e| matches!(e, ScanError::Refused(r) if r == "INSTREAM size limit exceeded"),
        ),
        (
            "an error",
            Act::Answer("stream: Can't allocate memory ERROR".into()),
            300_000,
            refused,
        ),
        (
            "an unknown answer",
            Act::Answer("stream: okay".into()),
            300_000,
            protocol,
        ),
        (
            "garbage",
            Act::Raw(b"\xff\xfe garbage\0".to_vec()),
            300_000,
            protocol,
        ),
        // then closed (one connection per command), or never ended (a session stays open)
        ("no NUL", Act::Raw(b"stream: OK".to_vec()), 300_000, |e| {
            matches!(e, ScanError::Protocol(_) | ScanError::Timeout { .. })
        }),
        (
            "two answers",
            Act::Raw(b"stream: OK\0stream: OK\0".to_vec()),
            300_000,
            protocol,
        ),
        (
            "an endless answer",
            Act::Raw(vec![b'A'; 10_000]),
            300_000,
            protocol,
        ),
        // an answer that comes before the end of the stream is seen as such only while the
        // stream is still being written: a body larger than the sockets' buffers
        (
            "OK before the end of the stream",
            Act::AnswerEarly("stream: OK".into()),
            32 << 20,
            protocol,
        ),
        (
            "an early refusal",
            Act::AnswerEarly("INSTREAM size limit exceeded. ERROR".into()),
            32 << 20,
            refused,
        ),
        ("closed without an answer", Act::Close, 300_000, |e| {
            matches!(e, ScanError::Closed | ScanError::Io { .. })
        }),
    ];
    for (sessions, pool) in [(true, 4), (false, 0)] {
        for (what, act, size, expected) in &cases {
            let e = scan_error(what, act.clone(), *size, sessions, pool).await;
            assert!(expected(&e), "{what} (sessions: {sessions}): {e}");
        }
    }
    // a session answer with the wrong number
    let fake = Fake::start(true, |r: &Request| {
        Act::Raw(format!("{}: stream: OK\0", r.nth + 1).into_bytes())
    })
    .await;
    let e = fake.scanner().scan(b"x").await.unwrap_err();
    assert!(protocol(&e), "{e}");
}

#[tokio::test]
async fn a_garbled_answer_in_a_reused_session_is_not_taken() {
    // a session's first answer is a detection; later ones are unnumbered "OK"s
    let fake = Fake::start(true, |r: &Request| match (r.command.as_str(), r.nth) {
        ("zINSTREAM", 1) => Act::Answer("stream: Fake.Virus FOUND".into()),
        ("zINSTREAM", _) => Act::Raw(b"stream: OK\0".to_vec()),
        _ => clean_clamd(r),
    })
    .await;
    let scanner = fake.scanner();
    for _ in 0..3 {
        assert_eq!(
            scanner.scan(b"x").await.unwrap(),
            ScanVerdict::Infected("Fake.Virus".into())
        );
    }
    assert_eq!(
        fake.connections(),
        3,
        "each garbled session is dropped and the scan sent on a new one"
    );
    assert!(scanner.sessions_enabled());
    // like clamd after its ReadTimeout: a newline-ended notice, then close
    let fake = Fake::start(true, |r: &Request| match r.nth {
        1 => clean_clamd(r),
        _ => Act::RawThenClose(b"COMMAND READ TIMED OUT\n".to_vec()),
    })
    .await;
    let scanner = fake.scanner();
    for _ in 0..3 {
        assert_eq!(scanner.scan(b"x").await.unwrap(), ScanVerdict::Clean);
    }
    assert_eq!(fake.connections(), 3);
}

#[tokio::test]
async fn a_hung_clamd_times_out() {
    let fake = Fake::start(true, |r: &Request| {
        if r.command == "zINSTREAM" {
            Act::Hang
        } else {
            clean_clamd(r)
        }
    })
    .await;
    let scanner = ClamdScanner::connect(
        &fake.addr,
        Timeouts {
            connect: Duration::from_secs(1),
            scan: Duration::from_millis(300),
        },
    )
    .unwrap();
    let start = Instant::now();
    let e = scanner.scan(b"x").await.unwrap_err();
    assert!(matches!(e, ScanError::Timeout { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(
        e.to_string()
            .starts_with("no complete answer from tcp://127.0.0.1:"),
        "{e}"
    );
}

#[tokio::test]
async fn nothing_listening_is_an_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let scanner =
        ClamdScanner::connect(&format!("tcp://127.0.0.1:{port}"), Timeouts::default()).unwrap();
    let e = scanner.scan(b"x").await.unwrap_err();
    assert!(matches!(e, ScanError::Connect { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("cannot connect to tcp://127.0.0.1:"),
        "{e}"
    );
    let scanner =
        ClamdScanner::connect("unix:///nonexistent/tarn/clamd.sock", Timeouts::default()).unwrap();
    assert!(matches!(
        scanner.scan(b"x").await,
        Err(ScanError::Connect { .. })
    ));
    assert!(scanner.ping().await.is_err());
}
