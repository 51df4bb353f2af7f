//! Serving a result file (protocol §1.5): HTTP single-range requests (RFC 9110 §14) and the
//! response headers. Esup-Pod itself downloads whole files, but browsers, `curl -C -` and
//! video players seek with ranges, and §7 C6 asks for them.

use std::ops::Range;

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use warp::http::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderName,
    HeaderValue,
};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::{Reply, Response};

use crate::store::{ByteStream, StoreError};

/// What a `Range` header asks of a representation of a given size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send everything (200).
    Full,
    /// These bytes, never empty and within the size (206).
    Partial(Range<u64>),
    /// Starts past the end (416).
    Unsatisfiable,
}

/// Reads a `Range` header against a representation of `size` bytes. Handles one range of
/// the `bytes` unit: `a-b`, `a-` and the suffix `-n`. Several ranges, another unit or a
/// malformed value give `Full`, which RFC 9110 §14.2 allows (a server may ignore `Range`);
/// a range starting at or past the end, or an empty suffix, is `Unsatisfiable`.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(header) = header else {
        return RangeRequest::Full;
    };
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return RangeRequest::Full;
    };
    // Range units are case-insensitive (RFC 9110 §14.1).
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    match (digits(first), digits(last)) {
        // `-n`: the last n bytes.
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || size == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial(size.saturating_sub(n)..size)
            }
        }
        // `a-`: from a to the end.
        (Some(a), None) if last.is_empty() => {
            if a >= size {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial(a..size)
            }
        }
        // `a-b`, inclusive; b past the end means the end.
        (Some(a), Some(b)) if a <= b => {
            if a >= size {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial(a..b.saturating_add(1).min(size))
            }
        }
        _ => RangeRequest::Full,
    }
}

/// A non-empty run of ASCII digits that fits in u64 (`u64::from_str` alone would take `+5`).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// RFC 8187 `attr-char`s are sent as is; everything else is percent-encoded in `filename*`.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `Content-Disposition` for a result file: the basename as an ASCII `filename` (non-ASCII,
/// quotes and backslashes replaced by `_`, for old clients) and the exact UTF-8 name in
/// `filename*` (RFC 6266 §4.3).
pub fn content_disposition(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let fallback: String = name
        .chars()
        .map(|c| match c {
            '"' | '\\' => '_',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '_',
        })
        .collect();
    format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, ATTR_CHAR_ESCAPES)
    )
}

/// `Content-Type` by extension, for the files runners produce (§0.1 item 7).
pub fn content_type(path: &str) -> &'static str {
    let extension = path
        .rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("ts") => "video/mp2t",
        Some("mp4") => "video/mp4",
        Some("mp3") => "audio/mpeg",
        Some("m4a") => "audio/mp4",
        Some("vtt") => "text/vtt",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("log" | "txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

/// The response to a result file download: 200 with the whole file, 206 with
/// `Content-Range` for a satisfiable range, or 416 with `Content-Range: bytes */<size>`.
/// `body` must yield exactly the announced bytes: `Content-Length` is set, so the server
/// sends a length-delimited body and a short or failing stream breaks the connection
/// (the client sees an incomplete transfer, never a wrong file).
pub fn file_response(
    task_id: &str,
    path: &str,
    total: u64,
    request: &RangeRequest,
    body: ByteStream,
) -> Response {
    let (status, length, content_range) = match request {
        RangeRequest::Full => (StatusCode::OK, total, None),
        RangeRequest::Partial(range) => (
            StatusCode::PARTIAL_CONTENT,
            range.end.saturating_sub(range.start),
            Some(format!(
                "bytes {}-{}/{total}",
                range.start,
                range.end.saturating_sub(1)
            )),
        ),
        RangeRequest::Unsatisfiable => {
            let mut response =
                warp::reply::with_status(warp::reply(), StatusCode::RANGE_NOT_SATISFIABLE)
                    .into_response();
            let headers = response.headers_mut();
            insert(headers, CONTENT_RANGE, &format!("bytes */{total}"));
            insert(headers, ACCEPT_RANGES, "bytes");
            insert(headers, HeaderName::from_static("x-task-id"), task_id);
            return response;
        }
    };
    // warp wants a `Sync` stream; a `BoxStream` is only `Send`.
    let mut response = warp::reply::stream(SyncStream(std::sync::Mutex::new(body))).into_response();
    *response.status_mut() = status;
    let headers = response.headers_mut();
    insert(headers, CONTENT_LENGTH, &length.to_string());
    if let Some(content_range) = content_range {
        insert(headers, CONTENT_RANGE, &content_range);
    }
    insert(headers, ACCEPT_RANGES, "bytes");
    insert(headers, CONTENT_TYPE, content_type(path));
    insert(headers, CONTENT_DISPOSITION, &content_disposition(path));
    insert(headers, HeaderName::from_static("x-task-id"), task_id);
    response
}

/// Sets a header, skipping a value that is not a valid header value (task ids and the
/// headers built here are ASCII; this only guards against a caller's surprise).
fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// Makes a `Send` stream `Sync` without locking: it is only ever polled through `&mut`, so
/// `Mutex::get_mut` hands it out for free, and nothing can poison the mutex.
struct SyncStream(std::sync::Mutex<ByteStream>);

impl futures::Stream for SyncStream {
    type Item = Result<Bytes, StoreError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let stream = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        stream.as_mut().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{StreamExt, stream};

    #[test]
    fn parse_range_table() {
        use RangeRequest::{Full, Partial, Unsatisfiable};
        let cases: &[(Option<&str>, u64, RangeRequest)] = &[
            (None, 10, Full),
            (Some("bytes=0-0"), 10, Partial(0..1)),
            (Some("bytes=0-9"), 10, Partial(0..10)),
            (Some("bytes=2-5"), 10, Partial(2..6)),
            (Some("bytes=2-500"), 10, Partial(2..10)),
            (Some("bytes=9-9"), 10, Partial(9..10)),
            (Some("bytes=3-"), 10, Partial(3..10)),
            (Some("bytes=0-"), 10, Partial(0..10)),
            (Some("bytes=-3"), 10, Partial(7..10)),
            (Some("bytes=-10"), 10, Partial(0..10)),
            (Some("bytes=-500"), 10, Partial(0..10)),
            (Some("BYTES = 2 - 5 "), 10, Partial(2..6)),
            (Some(" bytes=2-5"), 10, Partial(2..6)),
            (Some("bytes=10-"), 10, Unsatisfiable),
            (Some("bytes=10-20"), 10, Unsatisfiable),
            (Some("bytes=50-60"), 10, Unsatisfiable),
            (Some("bytes=-0"), 10, Unsatisfiable),
            (Some("bytes=0-"), 0, Unsatisfiable),
            (Some("bytes=-5"), 0, Unsatisfiable),
            (Some("bytes=5-2"), 10, Full),
            (Some("bytes=0-1,4-5"), 10, Full),
            (Some("bytes=-"), 10, Full),
            (Some("bytes="), 10, Full),
            (Some("bytes=a-b"), 10, Full),
            (Some("bytes=+1-2"), 10, Full),
            (Some("bytes=1-+2"), 10, Full),
            (Some("bytes=-+2"), 10, Full),
            (Some("bytes=--2"), 10, Full),
            (Some("bytes=1--2"), 10, Full),
            (Some("bytes=1"), 10, Full),
            (Some("bytes 1-2"), 10, Full),
            (Some("items=1-2"), 10, Full),
            (Some(""), 10, Full),
            (Some("bytes=99999999999999999999999-"), 10, Full),
            (Some("bytes=0-99999999999999999999999"), 10, Full),
            (Some("bytes=18446744073709551615-"), 10, Unsatisfiable),
            (Some("bytes=0-18446744073709551615"), 10, Partial(0..10)),
            (Some("bytes=-18446744073709551615"), 10, Partial(0..10)),
        ];
        for (header, size, expected) in cases {
            assert_eq!(
                &parse_range(*header, *size),
                expected,
                "{header:?} / {size}"
            );
        }
    }

    #[test]
    fn content_disposition_names() {
        let cases = [
            (
                "720p_my_lecture.mp4",
                "attachment; filename=\"720p_my_lecture.mp4\"; filename*=UTF-8''720p_my_lecture.mp4",
            ),
            (
                "sub/dir/Cours d'été (v2).mp4",
                "attachment; filename=\"Cours d'_t_ (v2).mp4\"; filename*=UTF-8''Cours%20d%27%C3%A9t%C3%A9%20%28v2%29.mp4",
            ),
            (
                "say \"hi\" \\ there.vtt",
                "attachment; filename=\"say _hi_ _ there.vtt\"; filename*=UTF-8''say%20%22hi%22%20%5C%20there.vtt",
            ),
            (
                "日本.json",
                "attachment; filename=\"__.json\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.json",
            ),
            (
                "a;b,c=d.txt",
                "attachment; filename=\"a;b,c=d.txt\"; filename*=UTF-8''a%3Bb%2Cc%3Dd.txt",
            ),
        ];
        for (path, expected) in cases {
            let value = content_disposition(path);
            assert_eq!(value, expected, "{path}");
            assert!(HeaderValue::from_str(&value).is_ok(), "{path}");
        }
    }

    #[test]
    fn content_types() {
        for (path, expected) in [
            ("360p_x.m3u8", "application/vnd.apple.mpegurl"),
            ("360p_x.ts", "video/mp2t"),
            ("dir/720p_x.MP4", "video/mp4"),
            ("audio_192k_x.mp3", "audio/mpeg"),
            ("audio_192k_x.m4a", "audio/mp4"),
            ("overview.vtt", "text/vtt"),
            ("x_0.png", "image/png"),
            ("info_video.json", "application/json"),
            ("encoding.log", "text/plain"),
            ("notes.txt", "text/plain"),
            ("archive.tar.gz", "application/octet-stream"),
            ("noextension", "application/octet-stream"),
            ("dir.mp4/noextension", "application/octet-stream"),
        ] {
            assert_eq!(content_type(path), expected, "{path}");
        }
    }

    fn chunks(data: &'static [u8]) -> ByteStream {
        stream::iter(data.chunks(3).map(|c| Ok(Bytes::from_static(c)))).boxed()
    }

    fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    async fn body_bytes(response: Response) -> Vec<u8> {
        use http_body_util::BodyExt;
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn full_partial_and_unsatisfiable_responses() {
        let full = file_response(
            "uid-1",
            "d/Cours d'été.mp4",
            10,
            &RangeRequest::Full,
            chunks(b"0123456789"),
        );
        assert_eq!(full.status(), StatusCode::OK);
        assert_eq!(header(&full, "content-length"), Some("10"));
        assert_eq!(header(&full, "content-range"), None);
        assert_eq!(header(&full, "accept-ranges"), Some("bytes"));
        assert_eq!(header(&full, "content-type"), Some("video/mp4"));
        assert_eq!(header(&full, "x-task-id"), Some("uid-1"));
        assert!(header(&full, "content-disposition").is_some_and(|v| v.contains("%C3%A9")));
        assert_eq!(body_bytes(full).await, b"0123456789");

        let partial = file_response(
            "uid-1",
            "overview.vtt",
            10,
            &RangeRequest::Partial(2..6),
            chunks(b"2345"),
        );
        assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(header(&partial, "content-length"), Some("4"));
        assert_eq!(header(&partial, "content-range"), Some("bytes 2-5/10"));
        assert_eq!(header(&partial, "content-type"), Some("text/vtt"));
        assert_eq!(body_bytes(partial).await, b"2345");

        let refused = file_response(
            "uid-1",
            "a.mp4",
            10,
            &RangeRequest::Unsatisfiable,
            chunks(b"0123456789"),
        );
        assert_eq!(refused.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(header(&refused, "content-range"), Some("bytes */10"));
        assert_eq!(header(&refused, "accept-ranges"), Some("bytes"));
        assert_eq!(header(&refused, "x-task-id"), Some("uid-1"));
        assert!(body_bytes(refused).await.is_empty());
    }

    /// Through a real server: the body goes out length-delimited (not chunked), and a
    /// stream that fails midway cuts the connection instead of ending the body cleanly.
    #[tokio::test]
    async fn served_over_http() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use warp::Filter;

        let route = warp::path!(String).map(|name: String| {
            let body: ByteStream = if name == "broken" {
                chunks(b"01234")
                    .chain(stream::once(async {
                        Err(StoreError::Io(std::io::Error::other("disk gone")))
                    }))
                    .boxed()
            } else {
                chunks(b"0123456789")
            };
            file_response("uid-1", &name, 10, &RangeRequest::Full, body)
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(warp::serve(route).incoming(listener).run());

        async fn fetch(addr: std::net::SocketAddr, path: &str) -> (String, bool) {
            let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET /{path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            conn.write_all(request.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            let clean = conn.read_to_end(&mut raw).await.is_ok();
            (String::from_utf8_lossy(&raw).into_owned(), clean)
        }

        let (ok, _) = fetch(addr, "a.mp4").await;
        let lower = ok.to_ascii_lowercase();
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(lower.contains("content-length: 10\r\n"), "{ok}");
        assert!(!lower.contains("transfer-encoding"), "{ok}");
        assert!(ok.ends_with("\r\n\r\n0123456789"), "{ok}");

        // hyper may not even have sent the head when the stream fails; either way the
        // connection closes before the 10 announced bytes.
        let (broken, _) = fetch(addr, "broken").await;
        let body = broken.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        assert!(
            body.len() < 10,
            "a failed stream must not look complete: {broken:?}"
        );
        server.abort();
    }
}
