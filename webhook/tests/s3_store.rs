//! The result store's S3 backend against a real S3-compatible server: moto, started on a free
//! loopback port by `tests/s3-server` (which installs it into a cached virtualenv the first
//! time, ~30 s with PyPI reachable; ~1 s to start afterwards). No silent skipping: if the
//! server cannot start, the test fails and says why.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests fail loudly by design

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use esup_webhook::store::{Attempt, ResultStore, StoreConfig, StoreError};
use futures::stream::{self, TryStreamExt};
use sha2::{Digest, Sha256};

const UID: &str = "2f53b18a-1c09-4cdb-b31d-6a68f3e6a761";
const AT: Attempt<'static> = Attempt::launch(UID, 1);
const BUCKET: &str = "esup-results";

/// The moto process; killed when dropped, so a failing test does not leave it behind.
struct S3Server {
    child: Child,
    addr: SocketAddr,
    /// The script's and moto's stderr (one line per request: kept out of the test output).
    log: tempfile::NamedTempFile,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    fn start() -> Self {
        // Read when the test runs (cargo sets it), not when it was built: a build cache shared
        // with a checkout elsewhere would otherwise point at that checkout.
        let dir = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
        let script = format!("{dir}/tests/s3-server");
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(&script)
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
        let Some(stdout) = child.stdout.take() else {
            panic!("{script}: no stdout")
        };
        // The first line is `port=N` (after the install, if one is needed), then the
        // script becomes moto; the rest of its output is not ours to read.
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let port: u16 = match (read, line.trim().strip_prefix("port=")) {
            (Ok(_), Some(port)) => port
                .parse()
                .unwrap_or_else(|e| panic!("{script}: {line:?}: {e}")),
            (read, _) => {
                let status = child.wait();
                let stderr = std::fs::read_to_string(log.path()).unwrap_or_default();
                panic!(
                    "the S3 test server did not start ({script}: {read:?}, {line:?}, exit {status:?}); \
                     it needs python3 with venv and, the first time, PyPI. Its stderr:\n{stderr}"
                );
            }
        };
        let server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http(server.addr, "GET", "/").is_ok_and(|r| r.starts_with("HTTP/1.1 200")) {
                break;
            }
            if Instant::now() > deadline {
                let stderr = std::fs::read_to_string(server.log.path()).unwrap_or_default();
                panic!(
                    "moto did not answer on {} within 30 s. Its stderr:\n{stderr}",
                    server.addr
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn store(&self, prefix: Option<&str>) -> ResultStore {
        ResultStore::new(&StoreConfig::S3 {
            endpoint: Some(self.endpoint()),
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            allow_http: true,
            prefix: prefix.map(Into::into),
        })
        .unwrap()
    }
}

/// A bare HTTP/1.1 exchange (moto accepts unsigned requests), for what the store API does
/// not do: creating the bucket, looking at raw keys.
fn http(addr: SocketAddr, method: &str, target: &str) -> std::io::Result<String> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        conn,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response)?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

fn body(
    chunks: Vec<Bytes>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
    stream::iter(chunks.into_iter().map(Ok))
}

async fn read_all(
    store: &ResultStore,
    path: &str,
    range: Option<std::ops::Range<u64>>,
) -> (u64, Vec<u8>) {
    let (total, s) = store.get(AT, path, range).await.unwrap().unwrap();
    let chunks: Vec<Bytes> = s.try_collect().await.unwrap();
    (total, chunks.concat())
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_backend() {
    let server = S3Server::start();
    let created = http(server.addr, "PUT", &format!("/{BUCKET}")).unwrap();
    assert!(
        created.starts_with("HTTP/1.1 200"),
        "create bucket: {created}"
    );
    let store = server.store(Some("esup/results"));

    // Small file: one PUT; sha256 and size computed on the way.
    let stored = store
        .put(
            AT,
            "info_video.json",
            body(vec![
                Bytes::from_static(b"hello "),
                Bytes::from_static(b"world"),
            ]),
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        stored.sha256,
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    );
    assert_eq!(stored.size_bytes, 11);
    assert_eq!(store.head(AT, "info_video.json").await.unwrap(), Some(11));
    assert_eq!(store.head(AT, "missing.json").await.unwrap(), None);
    assert!(store.get(AT, "missing.json", None).await.unwrap().is_none());

    // 20 MiB of non-repeating bytes: a multipart upload (8 MiB parts).
    let big: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let big = Bytes::from(big);
    let chunks: Vec<Bytes> = big.chunks(1 << 20).map(Bytes::copy_from_slice).collect();
    let stored = store
        .put(AT, "1080p_my lecture.ts", body(chunks.clone()), u64::MAX)
        .await
        .unwrap();
    assert_eq!(stored.size_bytes, big.len() as u64);
    assert_eq!(stored.sha256, sha256_hex(&big));
    assert_eq!(
        read_all(&store, "1080p_my lecture.ts", None).await.1,
        big.to_vec()
    );

    // Ranges: first byte, middle (across a part boundary), suffix, whole, clipped, empty.
    let total = big.len() as u64;
    for range in [
        0..1,
        (8 << 20) - 3..(8 << 20) + 5,
        total - 7..total,
        0..total,
    ] {
        let (size, bytes) = read_all(&store, "1080p_my lecture.ts", Some(range.clone())).await;
        assert_eq!(size, total);
        assert!(
            bytes == big[range.start as usize..range.end as usize],
            "{range:?}"
        );
    }
    assert_eq!(
        read_all(&store, "1080p_my lecture.ts", Some(total - 2..total + 100))
            .await
            .1
            .len(),
        2
    );
    assert_eq!(
        read_all(&store, "1080p_my lecture.ts", Some(5..5)).await,
        (total, vec![])
    );

    // Too large, after parts went out: the multipart upload is aborted, nothing appears and
    // the existing object of the same name is untouched.
    let err = store
        .put(AT, "1080p_my lecture.ts", body(chunks.clone()), 15 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    let err = store
        .put(AT, "new.ts", body(chunks.clone()), 15 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    assert_eq!(store.head(AT, "new.ts").await.unwrap(), None);
    assert_eq!(
        store.head(AT, "1080p_my lecture.ts").await.unwrap(),
        Some(total)
    );
    let uploads = http(server.addr, "GET", &format!("/{BUCKET}?uploads")).unwrap();
    assert!(
        uploads.contains("ListMultipartUploadsResult") && !uploads.contains("<UploadId>"),
        "a multipart upload was left open: {uploads}"
    );

    // Odd names round-trip, stored verbatim.
    let names = [
        "Cours d'été (v2).mp4",
        "audio_192k_my lecture.vtt",
        "[HD] {brackets} ~tilde~ \"quoted\" <angle> | pipe ^ ` * +plus=.mp4",
        "sous-dossier/Ça marche ! 日本語.json",
        "emoji 🎬.png",
    ];
    for (i, name) in names.iter().enumerate() {
        let content = Bytes::from(format!("content {i}"));
        store
            .put(AT, name, body(vec![content.clone()]), 100)
            .await
            .unwrap();
        assert_eq!(
            read_all(&store, name, None).await.1,
            content.to_vec(),
            "{name}"
        );
    }
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.extend([
        "1080p_my lecture.ts".to_string(),
        "info_video.json".to_string(),
    ]);
    expected.sort();
    let listed: Vec<String> = store
        .list(AT)
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(listed, expected);
    let keys = http(
        server.addr,
        "GET",
        &format!("/{BUCKET}?list-type=2&prefix=esup/results/{UID}/"),
    )
    .unwrap();
    assert!(
        keys.contains(&format!(
            "<Key>esup/results/{UID}/1/files/audio_192k_my lecture.vtt</Key>"
        )),
        "{keys}"
    );
    assert!(
        keys.contains("Cours d") && keys.contains("été (v2).mp4</Key>"),
        "{keys}"
    );

    // 50 concurrent reads of the same object, whole or ranged, all exact.
    let reads: Vec<_> = (0..50u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let range = (i % 2 == 1).then(|| i * 1000..i * 1000 + 3_000_000);
                let (_, s) = store
                    .get(AT, "1080p_my lecture.ts", range.clone())
                    .await
                    .unwrap()
                    .unwrap();
                let bytes: Vec<Bytes> = s.try_collect().await.unwrap();
                (range, bytes.concat())
            })
        })
        .collect();
    for read in futures::future::join_all(reads).await {
        let (range, bytes) = read.unwrap();
        let expected = match &range {
            Some(r) => &big[r.start as usize..r.end as usize],
            None => &big[..],
        };
        assert!(bytes == expected, "{range:?}: {} bytes", bytes.len());
    }

    // Another prefix and another task are other namespaces.
    let other_prefix = server.store(None);
    assert!(other_prefix.list(AT).await.unwrap().is_empty());
    let other_task = "00000000-0000-0000-0000-000000000001";
    store
        .put(
            Attempt::launch(other_task, 1),
            "a.json",
            body(vec![Bytes::from_static(b"{}")]),
            10,
        )
        .await
        .unwrap();

    // Hostile paths never reach the bucket.
    for path in ["../x", "/etc/passwd", "a/../../b"] {
        let err = store
            .put(AT, path, body(vec![Bytes::from_static(b"x")]), 10)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidPath(_)), "{path}: {err}");
    }

    // The files, and the sums of those whose last upload succeeded (the refused replacement
    // of the big file removed its sum, which is then computed again from the bytes).
    assert_eq!(
        store
            .stored_sha256(AT, "1080p_my lecture.ts")
            .await
            .unwrap()
            .unwrap()
            .sha256,
        sha256_hex(&big)
    );
    assert_eq!(
        store.delete_task(UID).await.unwrap(),
        (names.len() + 2) + (names.len() + 1)
    );
    assert!(store.list(AT).await.unwrap().is_empty());
    assert_eq!(
        store.list(Attempt::launch(other_task, 1)).await.unwrap(),
        vec![("a.json".to_string(), 2)]
    );
}
