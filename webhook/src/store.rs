//! The result store: the files runners upload, kept per task (by Kubernetes uid) and per launch
//! until the task is deleted, and served to Esup-Pod (protocol §1.5). One code path over two
//! `object_store` backends: a directory (a PVC in the Helm chart) or an S3-compatible bucket.
//!
//! Object keys, under `[<prefix>/]<task uid>/`:
//! - `<launch>/files/<result path>`: the files the runner of the task's `launch`-th Job
//!   uploaded. Per launch, so that a leftover runner of an earlier launch can never replace
//!   the files of the launch that completed.
//! - `<launch>/sha256/<result path>`: the SHA-256 the webhook computed while storing that file,
//!   which the manifest gives Esup-Pod (never the runner's claim).
//! - `<launch>/script_output`: the end of the runner's output, kept here rather than in the
//!   task's status so that retained tasks stay small in etcd and in every watch cache.
//! - `<result path>`: files of results recorded before per-launch storage ([`Attempt::legacy`]).
//!
//! The result path is kept verbatim: files on
//! the volume and keys in the bucket carry the names Esup-Pod sees (spaces, accents,
//! parentheses), for whoever browses them. Hence `Path::parse`, which keeps names as they are,
//! rather than `Path::from`/`PathPart::from`, which percent-encode every non-ASCII byte and
//! a few ASCII characters (`[`, `~`, `"`...). Everything `safe_result_path` accepts parses:
//! `Path::parse` only refuses empty, `.`/`..` segments and control characters, which
//! `safe_result_path` refuses first.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use esup_api::runner::{PathError, ResultFileEntry, safe_result_path};
use futures::stream::{self, BoxStream, Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt,
    PutPayloadMut, WriteMultipart,
};
use sha2::{Digest, Sha256};

/// Where results are kept.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// A directory, created if missing.
    Filesystem { root: PathBuf },
    /// An S3-compatible bucket (AWS, MinIO, Ceph RGW, Garage...), addressed path-style.
    S3 {
        /// e.g. `http://minio.storage.svc:9000`; `None` means AWS itself.
        endpoint: Option<String>,
        bucket: String,
        /// Empty means `us-east-1`.
        region: String,
        access_key_id: String,
        secret_access_key: String,
        /// Allows `http://` endpoints, for in-cluster servers without TLS.
        allow_http: bool,
        /// Key prefix, e.g. `esup/results`, for a bucket shared with other data.
        prefix: Option<String>,
    },
}

// By hand so that the secret never reaches a log line.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Filesystem { root } => f.debug_struct("Filesystem").field("root", root).finish(),
            Self::S3 {
                endpoint,
                bucket,
                region,
                access_key_id,
                allow_http,
                prefix,
                ..
            } => f
                .debug_struct("S3")
                .field("endpoint", endpoint)
                .field("bucket", bucket)
                .field("region", region)
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"<redacted>")
                .field("allow_http", allow_http)
                .field("prefix", prefix)
                .finish(),
        }
    }
}

/// Which files of a task: those of one launch, or those stored before per-launch storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt<'a> {
    pub uid: &'a str,
    /// `None`: the layout without launches, for results recorded before it.
    pub launch: Option<u32>,
}

impl<'a> Attempt<'a> {
    pub const fn launch(uid: &'a str, launch: u32) -> Self {
        Self {
            uid,
            launch: Some(launch),
        }
    }

    pub const fn legacy(uid: &'a str) -> Self {
        Self { uid, launch: None }
    }
}

/// Name of the script output object in a launch's directory.
const SCRIPT_OUTPUT: &str = "script_output";
const FILES_DIR: &str = "files";
const SUMS_DIR: &str = "sha256";

/// A file's bytes as `get` streams them.
pub type ByteStream = BoxStream<'static, Result<Bytes, StoreError>>;

/// What `put` stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFile {
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    pub size_bytes: u64,
}

impl StoredFile {
    /// The manifest entry for this file.
    pub fn entry(self, path: impl Into<String>) -> ResultFileEntry {
        ResultFileEntry {
            path: path.into(),
            sha256: self.sha256,
            size_bytes: self.size_bytes,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid task id {0:?}")]
    InvalidTaskId(String),
    #[error("invalid result file path: {0}")]
    InvalidPath(#[from] PathError),
    #[error("result file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The uploaded body failed (client gone, connection reset).
    #[error("upload interrupted: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("result store configuration: {0}")]
    Config(String),
    #[error("result store: {0}")]
    Backend(#[from] object_store::Error),
    #[error("result store I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// Stable label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidTaskId(_) => "InvalidTaskId",
            Self::InvalidPath(_) => "InvalidPath",
            Self::TooLarge { .. } => "FileTooLarge",
            Self::Body(_) => "UploadInterrupted",
            Self::Config(_) => "StoreConfig",
            Self::Backend(_) | Self::Io(_) => "StoreBackend",
        }
    }
}

/// Longest task uid accepted; Kubernetes uids are 36-character UUIDs.
const MAX_TASK_UID_LEN: usize = 64;

/// Upload part size: S3 needs at least 5 MiB per part but the last; files below it (most
/// results: JSON, VTT, PNG, small playlists) go up in one atomic `put`.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts in flight per upload, which bounds an upload's memory to about 3 × `PART_SIZE`.
const PARTS_IN_FLIGHT: usize = 2;

/// Read size when serving from the filesystem. `object_store`'s own file stream reads 8 KiB
/// per blocking task, which costs a thread hop every 8 KiB of a multi-gigabyte video.
const FILE_READ_CHUNK: u64 = 256 * 1024;

#[derive(Clone, Debug)]
pub struct ResultStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ObjectStore>,
    /// Key prefix all tasks live under (empty for the filesystem).
    base: Path,
    /// The directory, for the filesystem backend: `delete_task` also removes what a crash
    /// mid-upload left there (staged `name#N` files, which listing hides).
    root: Option<PathBuf>,
}

/// The S3 client's credentials: the static keys when given; else the platform's chain, as
/// the AWS SDKs read it from the environment (workload identity: a web-identity token file
/// and role, as EKS and other OIDC-federated clusters inject them into the pod; then the
/// container or instance metadata). Empty keys must not become a static credential, which
/// would sign every request with an empty key.
fn s3_builder(access_key_id: &str, secret_access_key: &str) -> AmazonS3Builder {
    if access_key_id.is_empty() && secret_access_key.is_empty() {
        AmazonS3Builder::from_env()
    } else {
        AmazonS3Builder::new()
            .with_access_key_id(access_key_id)
            .with_secret_access_key(secret_access_key)
    }
}

impl ResultStore {
    pub fn new(config: &StoreConfig) -> Result<Self, StoreError> {
        let inner = match config {
            StoreConfig::Filesystem { root } => {
                std::fs::create_dir_all(root)?;
                let root = std::fs::canonicalize(root)?;
                // fsync: the file must survive a node crash once the runner was told it is
                // stored, since Esup-Pod is then told the task is complete.
                let store = LocalFileSystem::new_with_prefix(&root)?.with_fsync(true);
                Inner {
                    store: Arc::new(store),
                    base: Path::ROOT,
                    root: Some(root),
                }
            }
            StoreConfig::S3 {
                endpoint,
                bucket,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
                prefix,
            } => {
                if bucket.is_empty() {
                    return Err(StoreError::Config("S3 bucket name is empty".into()));
                }
                // object_store's reqwest is built with rustls but no bundled provider (see
                // Cargo.toml): give it ring, the one kube uses. A no-op if already installed.
                let _ = rustls::crypto::ring::default_provider().install_default();
                // No overall request timeout: a GET is streamed to Esup-Pod at its own pace and
                // a big video can take minutes. A stalled peer is bounded by the other side's
                // timeouts (Esup-Pod's, the runner's), which drop the request and ours with it.
                let options = ClientOptions::new()
                    .with_timeout_disabled()
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_allow_http(*allow_http);
                let mut builder = s3_builder(access_key_id, secret_access_key)
                    .with_bucket_name(bucket)
                    // S3-compatible servers mostly ignore the region but sign with one.
                    .with_region(if region.is_empty() {
                        "us-east-1"
                    } else {
                        region
                    })
                    .with_virtual_hosted_style_request(false)
                    .with_client_options(options);
                if let Some(endpoint) = endpoint.as_deref().filter(|e| !e.is_empty()) {
                    builder = builder.with_endpoint(endpoint);
                }
                let prefix = prefix.as_deref().unwrap_or_default();
                let base = Path::parse(prefix.trim_matches('/')).map_err(|e| {
                    StoreError::Config(format!("invalid S3 key prefix {prefix:?}: {e}"))
                })?;
                Inner {
                    store: Arc::new(builder.build()?),
                    base,
                    root: None,
                }
            }
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Streams a file in, computing its SHA-256 and size on the way. More than `max_bytes`
    /// is refused. The file appears atomically (a single put, or a multipart upload completed
    /// at the end), so no reader sees it half-written; on any failure the partial upload is
    /// aborted and nothing is left behind. An existing file of the same path is replaced.
    ///
    /// The SHA-256 is also kept beside the file (per launch), for [`Self::stored_sha256`]: the
    /// manifest must give the stored bytes' hash, and reading a video back at completion
    /// to compute it again would double the transfer.
    pub async fn put<S, E>(
        &self,
        at: Attempt<'_>,
        path: &str,
        mut body: S,
        max_bytes: u64,
    ) -> Result<StoredFile, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let location = self.location(at, path)?;
        // The old sum goes first: from here until the new one is written, a completion
        // recomputes the hash from the stored bytes rather than trust a stale sum.
        let sum = self.sum_location(at, path)?;
        if let Some(sum) = &sum {
            delete_if_present(&self.inner.store, sum).await?;
        }
        let store = &self.inner.store;
        let mut upload = Upload::Buffered(PutPayloadMut::new());
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let received = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StoreError::Body(e.into()))?;
                size = size.saturating_add(chunk.len() as u64);
                if size > max_bytes {
                    return Err(StoreError::TooLarge { limit: max_bytes });
                }
                hasher.update(&chunk);
                upload.push(store, &location, chunk).await?;
            }
            Ok(())
        }
        .await;
        match received {
            Ok(()) => upload.finish(store, &location).await?,
            Err(error) => {
                upload.abort(&location).await;
                return Err(error);
            }
        }
        let stored = StoredFile {
            sha256: esup_api::lower_hex(&hasher.finalize()),
            size_bytes: size,
        };
        if let Some(sum) = &sum {
            let line = format!("{} {}", stored.sha256, stored.size_bytes);
            self.inner.store.put(sum, line.into()).await?;
        }
        Ok(stored)
    }

    /// The SHA-256 and size of a stored file as computed while it was stored, or `None` if
    /// there is no such file. A file whose sum is missing (a crash between the two writes, a
    /// legacy file) is hashed again from its stored bytes.
    pub async fn stored_sha256(
        &self,
        at: Attempt<'_>,
        path: &str,
    ) -> Result<Option<StoredFile>, StoreError> {
        let Some(size) = self.head(at, path).await? else {
            return Ok(None);
        };
        if let Some(sum) = self.sum_location(at, path)? {
            match self.inner.store.get(&sum).await {
                Ok(found) => {
                    let text = found.bytes().await?;
                    if let Some(recorded) = parse_sum(&text).filter(|r| r.size_bytes == size) {
                        return Ok(Some(recorded));
                    }
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let Some((_, mut body)) = self.get(at, path, None).await? else {
            return Ok(None);
        };
        let mut hasher = Sha256::new();
        let mut read: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            read = read.saturating_add(chunk.len() as u64);
            hasher.update(&chunk);
        }
        Ok(Some(StoredFile {
            sha256: esup_api::lower_hex(&hasher.finalize()),
            size_bytes: read,
        }))
    }

    /// Keeps the runner's output of a launch; returns its key relative to the store's base
    /// (what `status.result.scriptOutputRef.key` records).
    pub async fn put_script_output(
        &self,
        task_uid: &str,
        launch: u32,
        text: &str,
    ) -> Result<String, StoreError> {
        let location = self.script_output_location(task_uid, launch)?;
        self.inner
            .store
            .put(&location, Bytes::from(text.to_owned()).into())
            .await?;
        Ok(relative_name(&location, &self.inner.base).unwrap_or_default())
    }

    /// The runner's output of a launch, `None` if none was kept. Bytes that are not UTF-8
    /// (never written so) are replaced rather than refused: it is a log.
    pub async fn script_output(
        &self,
        task_uid: &str,
        launch: u32,
    ) -> Result<Option<String>, StoreError> {
        let location = self.script_output_location(task_uid, launch)?;
        match self.inner.store.get(&location).await {
            Ok(found) => Ok(Some(
                String::from_utf8_lossy(&found.bytes().await?).into_owned(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The size of a stored file, or `None` if there is none.
    pub async fn head(&self, at: Attempt<'_>, path: &str) -> Result<Option<u64>, StoreError> {
        let location = self.location(at, path)?;
        match self.inner.store.head(&location).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The bytes of `range` (clipped to the file's end), or of the whole file, streamed, with
    /// the file's total size; `None` if there is no such file. `range` must start inside the
    /// file (take it from [`crate::range::parse_range`] on the size `head` gave).
    pub async fn get(
        &self,
        at: Attempt<'_>,
        path: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<(u64, ByteStream)>, StoreError> {
        let location = self.location(at, path)?;
        if range.as_ref().is_some_and(|r| r.start >= r.end) {
            // object_store refuses empty ranges; an empty answer is the honest one.
            return Ok(self
                .head(at, path)
                .await?
                .map(|size| (size, stream::empty().boxed())));
        }
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = match self.inner.store.get_opts(&location, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let total = result.meta.size;
        let body = match result.payload {
            GetResultPayload::File(file, _) => file_stream(file, result.range),
            GetResultPayload::Stream(s) => s.map_err(StoreError::from).boxed(),
        };
        Ok(Some((total, body)))
    }

    /// The files of a launch (original names) and sizes, sorted by name.
    pub async fn list(&self, at: Attempt<'_>) -> Result<Vec<(String, u64)>, StoreError> {
        let base = self.files_base(at)?;
        let mut files: Vec<(String, u64)> = self
            .inner
            .store
            .list(Some(&base))
            .map_err(StoreError::from)
            .try_filter_map(|meta| {
                let name = relative_name(&meta.location, &base);
                futures::future::ready(Ok(name.map(|name| (name, meta.size))))
            })
            .try_collect()
            .await?;
        files.sort();
        Ok(files)
    }

    /// Removes every file of the task, of every launch; returns how many objects were removed.
    pub async fn delete_task(&self, task_uid: &str) -> Result<usize, StoreError> {
        let base = self.task_base(task_uid)?;
        let locations = self
            .inner
            .store
            .list(Some(&base))
            .map_ok(|meta| meta.location)
            .boxed();
        let mut deleted = self.inner.store.delete_stream(locations);
        let mut removed = 0;
        while let Some(outcome) = deleted.next().await {
            match outcome {
                Ok(_) => removed += 1,
                // Removed concurrently: the goal is reached all the same.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(root) = &self.inner.root {
            match tokio::fs::remove_dir_all(root.join(task_uid)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }

    /// The uids of every task that has files here (for the sweep that removes the files of
    /// deleted tasks).
    pub async fn task_ids(&self) -> Result<Vec<String>, StoreError> {
        let listing = self
            .inner
            .store
            .list_with_delimiter(Some(&self.inner.base))
            .await?;
        let mut ids: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .filter(|id| self.task_base(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn task_base(&self, task_uid: &str) -> Result<Path, StoreError> {
        let valid = !task_uid.is_empty()
            && task_uid.len() <= MAX_TASK_UID_LEN
            && task_uid
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-');
        if !valid {
            return Err(StoreError::InvalidTaskId(
                task_uid.chars().take(80).collect(),
            ));
        }
        Ok(self.inner.base.clone().join(task_uid))
    }

    /// Where the files of `at` live.
    fn files_base(&self, at: Attempt<'_>) -> Result<Path, StoreError> {
        let base = self.task_base(at.uid)?;
        Ok(match at.launch {
            Some(launch) => base.join(launch.to_string()).join(FILES_DIR),
            None => base,
        })
    }

    fn location(&self, at: Attempt<'_>, path: &str) -> Result<Path, StoreError> {
        let relative = Path::parse(safe_result_path(path)?).map_err(object_store::Error::from)?;
        let mut location = self.files_base(at)?;
        location.extend(relative.parts());
        Ok(location)
    }

    /// Where the sum of a file is kept; legacy files have none.
    fn sum_location(&self, at: Attempt<'_>, path: &str) -> Result<Option<Path>, StoreError> {
        let relative = Path::parse(safe_result_path(path)?).map_err(object_store::Error::from)?;
        let Some(launch) = at.launch else {
            return Ok(None);
        };
        let mut location = self
            .task_base(at.uid)?
            .join(launch.to_string())
            .join(SUMS_DIR);
        location.extend(relative.parts());
        Ok(Some(location))
    }

    fn script_output_location(&self, task_uid: &str, launch: u32) -> Result<Path, StoreError> {
        Ok(self
            .task_base(task_uid)?
            .join(launch.to_string())
            .join(SCRIPT_OUTPUT))
    }
}

/// An upload in progress: buffered while it fits in one part, then a multipart upload.
enum Upload {
    Buffered(PutPayloadMut),
    Multipart(WriteMultipart),
}

impl Upload {
    async fn push(
        &mut self,
        store: &Arc<dyn ObjectStore>,
        location: &Path,
        chunk: Bytes,
    ) -> Result<(), StoreError> {
        match self {
            Self::Buffered(buffer) if buffer.content_length() + chunk.len() < PART_SIZE => {
                buffer.push(chunk);
            }
            Self::Buffered(buffer) => {
                let buffered = std::mem::take(buffer).freeze();
                let mut writer = WriteMultipart::new_with_chunk_size(
                    store.put_multipart(location).await?,
                    PART_SIZE,
                );
                for part in buffered {
                    writer.put(part);
                }
                writer.put(chunk);
                *self = Self::Multipart(writer);
            }
            Self::Multipart(writer) => {
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                writer.put(chunk);
            }
        }
        Ok(())
    }

    async fn finish(self, store: &Arc<dyn ObjectStore>, location: &Path) -> Result<(), StoreError> {
        match self {
            Self::Buffered(buffer) => store.put(location, buffer.freeze()).await?,
            // Aborts the upload itself if completing fails.
            Self::Multipart(writer) => writer.finish().await?,
        };
        Ok(())
    }

    async fn abort(self, location: &Path) {
        if let Self::Multipart(writer) = self
            && let Err(error) = writer.abort().await
        {
            // The staged file or S3 parts stay until `delete_task` (filesystem) or the
            // bucket's incomplete-upload lifecycle rule (S3).
            tracing::warn!(%location, %error, "result store: could not abort a partial upload");
        }
    }
}

/// Streams `range` of a local file in `FILE_READ_CHUNK` reads on the blocking pool. A file
/// shorter than announced (truncated meanwhile) ends the stream with an error rather than
/// short, so the client sees a broken transfer instead of a wrong file.
fn file_stream(file: std::fs::File, range: Range<u64>) -> ByteStream {
    stream::try_unfold((file, range), |(mut file, range)| async move {
        if range.is_empty() {
            return Ok(None);
        }
        let len = (range.end - range.start).min(FILE_READ_CHUNK);
        let start = range.start;
        let (file, chunk) = tokio::task::spawn_blocking(move || {
            file.seek(SeekFrom::Start(start))?;
            // `len` ≤ FILE_READ_CHUNK, so it fits in usize.
            let mut buffer = vec![0; len as usize];
            file.read_exact(&mut buffer)?;
            Ok::<_, std::io::Error>((file, buffer))
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(Some((Bytes::from(chunk), (file, start + len..range.end))))
    })
    .boxed()
}

/// `"<sha256> <size>"`, as `put` writes it.
fn parse_sum(text: &[u8]) -> Option<StoredFile> {
    let text = std::str::from_utf8(text).ok()?;
    let (sha256, size) = text.trim().split_once(' ')?;
    let valid = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| {
        size.parse().ok().map(|size_bytes| StoredFile {
            sha256: sha256.to_ascii_lowercase(),
            size_bytes,
        })
    })?
}

async fn delete_if_present(
    store: &Arc<dyn ObjectStore>,
    location: &Path,
) -> Result<(), StoreError> {
    match store.delete(location).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The result path of `location` under `base`.
fn relative_name(location: &Path, base: &Path) -> Option<String> {
    let parts: Vec<_> = location.prefix_match(base)?.collect();
    (!parts.is_empty()).then(|| {
        parts
            .iter()
            .map(|part| part.as_ref())
            .collect::<Vec<_>>()
            .join("/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "2f53b18a-1c09-4cdb-b31d-6a68f3e6a761";
    const AT: Attempt<'static> = Attempt::launch(UID, 1);

    fn store() -> (tempfile::TempDir, ResultStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ResultStore::new(&StoreConfig::Filesystem {
            root: dir.path().join("results"),
        })
        .unwrap();
        (dir, store)
    }

    fn body(
        chunks: Vec<&'static [u8]>,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
        stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c))))
    }

    async fn read_all(
        store: &ResultStore,
        path: &str,
        range: Option<Range<u64>>,
    ) -> (u64, Vec<u8>) {
        let (total, s) = store.get(AT, path, range).await.unwrap().unwrap();
        let chunks: Vec<Bytes> = s.try_collect().await.unwrap();
        (total, chunks.concat())
    }

    /// Every file left under the store's root, staged ones included.
    fn files_on_disk(dir: &tempfile::TempDir) -> Vec<String> {
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path.display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(dir.path(), &mut out);
        out
    }

    #[tokio::test]
    async fn put_hashes_and_sizes() {
        let (_dir, store) = store();
        let stored = store
            .put(AT, "info_video.json", body(vec![b"hello ", b"world"]), 100)
            .await
            .unwrap();
        assert_eq!(
            stored.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(stored.size_bytes, 11);
        assert_eq!(store.head(AT, "info_video.json").await.unwrap(), Some(11));
        let empty = store.put(AT, "empty.log", body(vec![]), 0).await.unwrap();
        assert_eq!(
            empty.sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(read_all(&store, "empty.log", None).await, (0, vec![]));
        let entry = stored.entry("info_video.json");
        assert!(entry.validate().is_ok());
    }

    #[tokio::test]
    async fn launches_are_kept_apart_with_their_sums_and_script_output() {
        let (dir, store) = store();
        let second = Attempt::launch(UID, 2);
        store
            .put(second, "720p.mp4", body(vec![b"launch two"]), 100)
            .await
            .unwrap();
        // A leftover runner of launch 1 writes the same path: launch 2's file stays.
        store
            .put(AT, "720p.mp4", body(vec![b"launch one, late"]), 100)
            .await
            .unwrap();
        let (_, bytes) = {
            let (total, s) = store.get(second, "720p.mp4", None).await.unwrap().unwrap();
            let chunks: Vec<Bytes> = s.try_collect().await.unwrap();
            (total, chunks.concat())
        };
        assert_eq!(bytes, b"launch two");
        let expected = esup_api::lower_hex(&Sha256::digest(b"launch two"));
        let sum = store
            .stored_sha256(second, "720p.mp4")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (sum.sha256.as_str(), sum.size_bytes),
            (expected.as_str(), 10)
        );
        // Without its recorded sum (a crash between the writes), the bytes are hashed again.
        std::fs::remove_file(
            dir.path()
                .join("results")
                .join(UID)
                .join("2/sha256/720p.mp4"),
        )
        .unwrap();
        let again = store
            .stored_sha256(second, "720p.mp4")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again, sum);
        // A sum that does not match the file's size is not trusted either.
        std::fs::write(
            dir.path()
                .join("results")
                .join(UID)
                .join("2/sha256/720p.mp4"),
            format!("{} 3", "0".repeat(64)),
        )
        .unwrap();
        assert_eq!(
            store
                .stored_sha256(second, "720p.mp4")
                .await
                .unwrap()
                .unwrap(),
            sum
        );
        assert!(
            store
                .stored_sha256(second, "none.mp4")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store.list(second).await.unwrap(),
            [("720p.mp4".to_owned(), 10)]
        );

        assert_eq!(store.script_output(UID, 2).await.unwrap(), None);
        let key = store
            .put_script_output(UID, 2, "[info_script.log]\nété")
            .await
            .unwrap();
        assert_eq!(key, format!("{UID}/2/script_output"));
        assert_eq!(
            store.script_output(UID, 2).await.unwrap().as_deref(),
            Some("[info_script.log]\nété")
        );
        // The script output is not a result file.
        assert_eq!(store.list(second).await.unwrap().len(), 1);
        assert_eq!(store.task_ids().await.unwrap(), [UID]);
    }

    #[tokio::test]
    async fn too_large_leaves_nothing() {
        let (dir, store) = store();
        let err = store
            .put(AT, "a.mp4", body(vec![b"12345", b"67890", b"x"]), 10)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { limit: 10 }), "{err}");
        assert_eq!(err.category(), "FileTooLarge");
        assert_eq!(store.head(AT, "a.mp4").await.unwrap(), None);
        assert!(files_on_disk(&dir).is_empty(), "{:?}", files_on_disk(&dir));
        // Exactly the limit is fine.
        store
            .put(AT, "a.mp4", body(vec![b"12345", b"67890"]), 10)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn large_upload_goes_multipart_and_aborts_cleanly() {
        let (dir, store) = store();
        let chunk = Bytes::from(vec![7u8; 1024 * 1024]);
        let chunks =
            |n: usize| stream::iter((0..n).map(|_| Ok::<_, std::io::Error>(chunk.clone())));
        // 20 MiB: three parts.
        let stored = store.put(AT, "big.ts", chunks(20), u64::MAX).await.unwrap();
        assert_eq!(stored.size_bytes, 20 * 1024 * 1024);
        let mut hasher = Sha256::new();
        for _ in 0..20 {
            hasher.update(&chunk);
        }
        assert_eq!(stored.sha256, esup_api::lower_hex(&hasher.finalize()));
        let (total, bytes) = read_all(&store, "big.ts", Some(5..(12 << 20))).await;
        assert_eq!(total, 20 << 20);
        assert_eq!(bytes.len(), (12 << 20) - 5);
        assert!(bytes.iter().all(|b| *b == 7));

        // Refused past the limit after parts went out: the staged file goes away too, and
        // the previous version of the file stays.
        let err = store
            .put(AT, "big.ts", chunks(30), 25 << 20)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }));
        assert_eq!(store.head(AT, "big.ts").await.unwrap(), Some(20 << 20));
        // The file, and its sum (gone while the new upload ran, recomputed on demand).
        assert_eq!(files_on_disk(&dir).len(), 1, "{:?}", files_on_disk(&dir));

        // A body that fails midway is an interrupted upload, and leaves nothing either.
        let failing = chunks(12).chain(stream::iter([Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "peer gone",
        ))]));
        let err = store
            .put(AT, "other.ts", failing, u64::MAX)
            .await
            .unwrap_err();
        assert_eq!(err.category(), "UploadInterrupted", "{err}");
        assert_eq!(store.head(AT, "other.ts").await.unwrap(), None);
        assert_eq!(files_on_disk(&dir).len(), 1, "{:?}", files_on_disk(&dir));
    }

    #[tokio::test]
    async fn ranges() {
        let (_dir, store) = store();
        store
            .put(AT, "v.mp4", body(vec![b"0123456789"]), 100)
            .await
            .unwrap();
        assert_eq!(
            read_all(&store, "v.mp4", None).await,
            (10, b"0123456789".to_vec())
        );
        assert_eq!(
            read_all(&store, "v.mp4", Some(0..1)).await,
            (10, b"0".to_vec())
        );
        assert_eq!(
            read_all(&store, "v.mp4", Some(3..7)).await,
            (10, b"3456".to_vec())
        );
        assert_eq!(
            read_all(&store, "v.mp4", Some(7..10)).await,
            (10, b"789".to_vec())
        );
        assert_eq!(
            read_all(&store, "v.mp4", Some(0..10)).await,
            (10, b"0123456789".to_vec())
        );
        // Clipped at the end, and empty when empty.
        assert_eq!(
            read_all(&store, "v.mp4", Some(8..50)).await,
            (10, b"89".to_vec())
        );
        assert_eq!(read_all(&store, "v.mp4", Some(4..4)).await, (10, vec![]));
        // The ranges `parse_range` hands out, end to end.
        use crate::range::{RangeRequest, parse_range};
        let RangeRequest::Partial(suffix) = parse_range(Some("bytes=-4"), 10) else {
            panic!("suffix range")
        };
        assert_eq!(
            read_all(&store, "v.mp4", Some(suffix)).await,
            (10, b"6789".to_vec())
        );
        assert!(store.get(AT, "missing.mp4", None).await.unwrap().is_none());
        assert!(
            store
                .get(AT, "missing.mp4", Some(0..1))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn list_and_delete() {
        let (dir, store) = store();
        let other = "00000000-0000-0000-0000-000000000001";
        for (uid, path, content) in [
            (UID, "b.vtt", &b"bb"[..]),
            (UID, "a.json", &b"a"[..]),
            (UID, "sub/dir/c.png", &b"ccc"[..]),
            (other, "a.json", &b"other"[..]),
        ] {
            store
                .put(Attempt::launch(uid, 1), path, body(vec![content]), 100)
                .await
                .unwrap();
        }
        // A prefix of the uid must not match the task.
        store
            .put(
                Attempt::launch("2f53b18a", 1),
                "x.log",
                body(vec![b"x"]),
                100,
            )
            .await
            .unwrap();
        assert_eq!(
            store.list(AT).await.unwrap(),
            vec![
                ("a.json".to_string(), 1),
                ("b.vtt".to_string(), 2),
                ("sub/dir/c.png".to_string(), 3)
            ]
        );
        // A crash mid-upload leaves a staged file; listing hides it, deleting removes it.
        std::fs::write(
            dir.path().join("results").join(UID).join("1/files/d.mp4#1"),
            b"partial",
        )
        .unwrap();
        assert_eq!(store.list(AT).await.unwrap().len(), 3);
        // Three files and their three sums.
        assert_eq!(store.delete_task(UID).await.unwrap(), 6);
        assert!(store.list(AT).await.unwrap().is_empty());
        assert!(!dir.path().join("results").join(UID).exists());
        assert_eq!(store.delete_task(UID).await.unwrap(), 0);
        assert_eq!(
            store.list(Attempt::launch(other, 1)).await.unwrap(),
            vec![("a.json".to_string(), 5)]
        );
        assert!(
            store
                .list(Attempt::launch("ffffffff", 1))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn hostile_paths_and_ids_refused() {
        let (dir, store) = store();
        for path in [
            "../x",
            "/etc/passwd",
            "a/../../b",
            "..",
            "a//b",
            "a\\..\\b",
            "x%2F..%2Fy",
        ] {
            let err = store
                .put(AT, path, body(vec![b"x"]), 100)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::InvalidPath(_)), "{path}: {err}");
            assert_eq!(err.category(), "InvalidPath");
            assert!(matches!(
                store.head(AT, path).await,
                Err(StoreError::InvalidPath(_))
            ));
            assert!(matches!(
                store.get(AT, path, None).await,
                Err(StoreError::InvalidPath(_))
            ));
        }
        for uid in [
            "",
            "..",
            "../etc",
            "ABCDEF",
            "a/b",
            "a b",
            &"a".repeat(65),
            "/abc",
        ] {
            let err = store
                .put(Attempt::launch(uid, 1), "a.json", body(vec![b"x"]), 100)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::InvalidTaskId(_)), "{uid}: {err}");
            assert!(store.list(Attempt::launch(uid, 1)).await.is_err());
            assert!(store.delete_task(uid).await.is_err());
        }
        assert!(files_on_disk(&dir).is_empty(), "{:?}", files_on_disk(&dir));
    }

    #[tokio::test]
    async fn odd_names_round_trip() {
        let (dir, store) = store();
        let names = [
            "Cours d'été (v2).mp4",
            "audio_192k_my lecture.vtt",
            "[HD] {brackets} ~tilde~ \"quoted\" <angle> | pipe ^ ` * .mp4",
            "sous-dossier/Ça marche ! 日本語.json",
            "..hidden",
            "emoji 🎬.png",
        ];
        for (i, name) in names.iter().enumerate() {
            let content = Bytes::from(format!("content {i}"));
            store
                .put(
                    AT,
                    name,
                    stream::iter([Ok::<_, std::io::Error>(content.clone())]),
                    100,
                )
                .await
                .unwrap();
            assert_eq!(
                read_all(&store, name, None).await.1,
                content.to_vec(),
                "{name}"
            );
        }
        let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        expected.sort();
        let listed: Vec<String> = store
            .list(AT)
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(listed, expected);
        // Verbatim on disk, for whoever browses the volume.
        for name in names {
            let on_disk = dir
                .path()
                .join("results")
                .join(UID)
                .join("1/files")
                .join(name);
            assert!(on_disk.is_file(), "{name}: {:?}", files_on_disk(&dir));
        }
        assert_eq!(store.delete_task(UID).await.unwrap(), 2 * names.len());
    }

    #[tokio::test]
    async fn concurrent_gets_return_exact_bytes() {
        let (_dir, store) = store();
        // 3 MiB of non-repeating bytes, so a misplaced chunk would show.
        let content: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let content = Bytes::from(content);
        store
            .put(
                AT,
                "720p_x.mp4",
                stream::iter([Ok::<_, std::io::Error>(content.clone())]),
                u64::MAX,
            )
            .await
            .unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let range = (i % 2 == 1).then(|| (i * 1000)..(i * 1000 + 700_000));
                    let (total, s) = store
                        .get(AT, "720p_x.mp4", range.clone())
                        .await
                        .unwrap()
                        .unwrap();
                    let bytes: Vec<Bytes> = s.try_collect().await.unwrap();
                    (range, total, bytes.concat())
                })
            })
            .collect();
        for task in tasks {
            let (range, total, bytes) = task.await.unwrap();
            assert_eq!(total, content.len() as u64);
            let expected = match &range {
                Some(r) => &content[r.start as usize..r.end as usize],
                None => &content[..],
            };
            assert!(bytes == expected, "range {range:?}: {} bytes", bytes.len());
        }
    }

    #[test]
    fn put_future_is_send() {
        fn assert_send<T: Send>(_: T) {}
        let (_dir, store) = store();
        assert_send(store.put(AT, "a", body(vec![]), 1));
        assert_send(store.get(AT, "a", None));
        assert_send(store.delete_task(UID));
    }

    #[test]
    fn config_debug_hides_the_secret() {
        let config = StoreConfig::S3 {
            endpoint: Some("http://127.0.0.1:9000".into()),
            bucket: "results".into(),
            region: "us-east-1".into(),
            access_key_id: "AKIA".into(),
            secret_access_key: "s3cr3t".into(),
            allow_http: true,
            prefix: None,
        };
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s3cr3t") && debug.contains("AKIA"),
            "{debug}"
        );
    }

    #[test]
    fn s3_config_builds_without_network() {
        let config = StoreConfig::S3 {
            endpoint: Some("http://127.0.0.1:9".into()),
            bucket: "results".into(),
            region: "us-east-1".into(),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            allow_http: true,
            prefix: Some("/esup/results/".into()),
        };
        let store = ResultStore::new(&config).unwrap();
        assert_eq!(store.inner.base.as_ref(), "esup/results");
        assert_eq!(
            store.location(AT, "a b/c.mp4").unwrap().as_ref(),
            format!("esup/results/{UID}/1/files/a b/c.mp4")
        );
        for (bucket, prefix) in [
            ("", None),
            ("results", Some("a//b")),
            ("results", Some("a/../b")),
        ] {
            let bad = StoreConfig::S3 {
                endpoint: None,
                bucket: bucket.into(),
                region: "us-east-1".into(),
                access_key_id: "k".into(),
                secret_access_key: "s".into(),
                allow_http: false,
                prefix: prefix.map(Into::into),
            };
            let err = ResultStore::new(&bad).unwrap_err();
            assert_eq!(
                err.category(),
                "StoreConfig",
                "{bucket:?} {prefix:?}: {err}"
            );
        }
    }
}

#[cfg(test)]
mod task_id_tests {
    use super::*;

    /// Without keys the S3 client takes the platform's credentials (workload identity); it
    /// used to sign with an empty static key.
    #[test]
    fn s3_credentials_are_static_only_when_keys_are_given() {
        use object_store::aws::AmazonS3ConfigKey::{AccessKeyId, SecretAccessKey};
        let keyless = s3_builder("", "");
        assert_eq!(
            keyless
                .get_config_value(&AccessKeyId)
                .filter(|k| k.is_empty()),
            None
        );
        assert_eq!(
            keyless
                .get_config_value(&SecretAccessKey)
                .filter(|k| k.is_empty()),
            None
        );
        let keyed = s3_builder("AKIA", "secret");
        assert_eq!(
            keyed.get_config_value(&AccessKeyId).as_deref(),
            Some("AKIA")
        );
        assert_eq!(
            keyed.get_config_value(&SecretAccessKey).as_deref(),
            Some("secret")
        );
    }

    #[tokio::test]
    async fn task_ids_lists_each_task_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResultStore::new(&StoreConfig::Filesystem {
            root: dir.path().to_owned(),
        })
        .unwrap();
        for (uid, path) in [
            ("0d02bb60-e5e1", "a.vtt"),
            ("0d02bb60-e5e1", "sub/b.vtt"),
            ("49522ebd-86c7", "c (v2).vtt"),
        ] {
            let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"x"))]);
            store
                .put(Attempt::launch(uid, 1), path, body, 10)
                .await
                .unwrap();
        }
        assert_eq!(
            store.task_ids().await.unwrap(),
            ["0d02bb60-e5e1", "49522ebd-86c7"]
        );
    }
}
