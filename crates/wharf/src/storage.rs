//! Blob storage through `object_store`: a local directory by default, any S3-compatible
//! service for scale-out. Objects are written whole or not at all (the local store renames a
//! finished temporary file; S3 commits a multipart upload only when complete).

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientConfigKey, GetOptions, GetResult, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig, WriteMultipart,
};
use tokio::io::AsyncReadExt;

pub use object_store::GetRange;

#[derive(Clone, Debug)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store: reads of plain keys go to the file itself (one trip to
    /// the blocking pool, where `object_store` makes up to four and maps the key to a path
    /// through a URL, which cost a download more than the rest of its request).
    local: Option<Arc<std::path::PathBuf>>,
}

/// A local file up to this size is read whole with its metadata; a larger one is streamed.
const READ_WHOLE: u64 = 64 * 1024;

/// A local file, opened, with what it is.
struct Opened {
    file: std::fs::File,
    path: std::path::PathBuf,
    meta: Meta,
}

/// What an object is: its whole size and when it was written.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    pub size: u64,
    pub last_modified: std::time::SystemTime,
}

impl From<&ObjectMeta> for Meta {
    fn from(meta: &ObjectMeta) -> Meta {
        Meta {
            size: meta.size,
            last_modified: meta.last_modified.into(),
        }
    }
}

/// An object's bytes, all of them or the `range` asked for.
pub struct Blob {
    pub meta: Meta,
    pub range: Range<u64>,
    pub stream: BoxStream<'static, object_store::Result<Bytes>>,
}

impl From<GetResult> for Blob {
    fn from(result: GetResult) -> Blob {
        Blob {
            meta: Meta::from(&result.meta),
            range: result.range.clone(),
            stream: result.into_stream(),
        }
    }
}

/// An object being written: see [`Storage::writer`].
pub struct Writer {
    parts: WriteMultipart,
}

impl Writer {
    pub async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.parts.wait_for_capacity(2).await?;
        self.parts.write(bytes);
        Ok(())
    }

    pub async fn finish(self) -> anyhow::Result<()> {
        self.parts.finish().await?;
        Ok(())
    }

    pub async fn abort(self) -> anyhow::Result<()> {
        self.parts.abort().await?;
        Ok(())
    }
}

/// The answer to a ranged read of an object that exists.
pub enum Part {
    Bytes(Blob),
    /// No byte of the object is in the range.
    Unsatisfiable(Meta),
}

/// Files up to this size are sent in one request; larger ones in parts of this size.
const PART_SIZE: usize = 8 * 1024 * 1024;

impl Storage {
    /// `s3://bucket/prefix` (configured by the usual `AWS_*` variables, `AWS_ENDPOINT_URL` for
    /// MinIO and friends), `file:///dir`, or a plain directory path.
    pub fn open(url: &str) -> anyhow::Result<Storage> {
        let store: Arc<dyn ObjectStore> = if url.starts_with("s3://") {
            let parsed = url::Url::parse(url)?;
            let bucket = parsed
                .host_str()
                .ok_or_else(|| anyhow::anyhow!("s3 URL without a bucket"))?;
            // An S3 store that is away must fail an upload within seconds (a 503 the client
            // retries), not after object_store's default three minutes of retries.
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    "3s",
                )
                .with_retry(RetryConfig {
                    max_retries: 3,
                    retry_timeout: std::time::Duration::from_secs(10),
                    ..RetryConfig::default()
                });
            if std::env::var("AWS_ENDPOINT_URL").is_ok_and(|e| e.starts_with("http://")) {
                builder = builder.with_allow_http(true);
            }
            let s3 = builder
                .build()
                .map_err(|e| anyhow::anyhow!("cannot use {url}: {e}"))?;
            let prefix = parsed.path().trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            }
        } else {
            let dir = url.strip_prefix("file://").unwrap_or(url);
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create storage directory {dir}: {e}"))?;
            // The directory `LocalFileSystem` resolves keys under.
            let root = std::fs::canonicalize(dir)
                .map_err(|e| anyhow::anyhow!("cannot use storage directory {dir}: {e}"))?;
            let store = Arc::new(LocalFileSystem::new_with_prefix(&root)?);
            return Ok(Storage {
                store,
                local: Some(Arc::new(root)),
            });
        };
        Ok(Storage { store, local: None })
    }

    /// The file of `key` in a local store, when the key is plain: segments of letters,
    /// digits and `._+~-`, none empty, `.` or `..` (what `LocalFileSystem` maps to the very
    /// same path). Other keys go through `object_store`.
    fn local_path(&self, key: &str) -> Option<std::path::PathBuf> {
        let root = self.local.as_deref()?;
        let plain = key.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._+~-".contains(&b))
        });
        plain.then(|| root.join(key))
    }

    /// Opens a local file and reads what it is, or `None` when there is none (a directory
    /// is none, as for `LocalFileSystem`).
    fn open_local(path: std::path::PathBuf) -> std::io::Result<Option<Opened>> {
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let metadata = file.metadata()?;
        if metadata.is_dir() {
            return Ok(None);
        }
        let meta = Meta {
            size: metadata.len(),
            last_modified: metadata.modified()?,
        };
        Ok(Some(Opened { file, path, meta }))
    }

    /// `range` of a local file: read at once when small, else streamed as `object_store`
    /// streams its files. `None` when there is no such file; an empty `range` when no byte
    /// of it is in `wanted` (`None`: all of it).
    async fn read_local(
        path: std::path::PathBuf,
        wanted: Option<GetRange>,
    ) -> anyhow::Result<Option<(Meta, Range<u64>, Option<Blob>)>> {
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            use std::io::{Read, Seek};
            let Some(mut opened) = Storage::open_local(path)? else {
                return Ok(None);
            };
            let size = opened.meta.size;
            let range = match &wanted {
                None => 0..size,
                Some(GetRange::Suffix(0)) => 0..0,
                Some(range) => range.as_range(size).unwrap_or(0..0),
            };
            let length = range.end - range.start;
            if range.is_empty() || length > READ_WHOLE {
                return Ok(Some((opened, range, None)));
            }
            let mut bytes = Vec::with_capacity(length as usize);
            opened.file.seek(std::io::SeekFrom::Start(range.start))?;
            (&mut opened.file).take(length).read_to_end(&mut bytes)?;
            Ok(Some((opened, range, Some(Bytes::from(bytes)))))
        })
        .await??;
        let Some((opened, range, bytes)) = read else {
            return Ok(None);
        };
        let meta = opened.meta;
        if range.is_empty() {
            return Ok(Some((meta, range, None)));
        }
        let stream: BoxStream<'static, object_store::Result<Bytes>> = match bytes {
            Some(bytes) => Box::pin(futures_util::stream::once(async move { Ok(bytes) })),
            None => GetResult {
                payload: object_store::GetResultPayload::File(opened.file, opened.path),
                meta: ObjectMeta {
                    location: ObjectPath::default(),
                    last_modified: meta.last_modified.into(),
                    size: meta.size,
                    e_tag: None,
                    version: None,
                },
                range: range.clone(),
                attributes: Default::default(),
                extensions: Default::default(),
            }
            .into_stream(),
        };
        let blob = Blob {
            meta,
            range: range.clone(),
            stream,
        };
        Ok(Some((meta, range, Some(blob))))
    }

    /// Stores the content of a local file under `key`.
    pub async fn put_file(&self, key: &str, file: &Path) -> anyhow::Result<()> {
        let location = ObjectPath::parse(key)?;
        let mut source = tokio::fs::File::open(file).await?;
        let size = source.metadata().await?.len();
        if size as usize <= PART_SIZE {
            let mut buffer = Vec::with_capacity(size as usize);
            source.read_to_end(&mut buffer).await?;
            self.store.put(&location, PutPayload::from(buffer)).await?;
            return Ok(());
        }
        let upload = self.store.put_multipart(&location).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut chunk = vec![0u8; 256 * 1024];
        loop {
            let n = source.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(2).await?;
            writer.write(&chunk[..n]);
        }
        writer.finish().await?;
        Ok(())
    }

    /// An object written as its bytes arrive (e.g. from an upstream index): it exists only
    /// once `finish` succeeds, and `abort` leaves nothing behind.
    pub async fn writer(&self, key: &str) -> anyhow::Result<Writer> {
        let location = ObjectPath::parse(key)?;
        let upload = self.store.put_multipart(&location).await?;
        Ok(Writer {
            parts: WriteMultipart::new_with_chunk_size(upload, PART_SIZE),
        })
    }

    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let location = ObjectPath::parse(key)?;
        self.store.put(&location, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// The whole object, or `None` when there is no such object.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Blob>> {
        if let Some(path) = self.local_path(key) {
            return Ok(match Storage::read_local(path, None).await? {
                Some((_, _, Some(blob))) => Some(blob),
                // An empty file: no bytes to stream.
                Some((meta, range, None)) => Some(Blob {
                    meta,
                    range,
                    stream: Box::pin(futures_util::stream::empty()),
                }),
                None => None,
            });
        }
        let Ok(location) = ObjectPath::parse(key) else {
            return Ok(None);
        };
        match self.store.get(&location).await {
            Ok(result) => Ok(Some(Blob::from(result))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Only the bytes of `range`, read from storage as a range (a local read from the offset,
    /// an S3 `GET` with `Range`), or what the object is when no byte of it is in `range`.
    pub async fn get_range(&self, key: &str, range: GetRange) -> anyhow::Result<Option<Part>> {
        if let Some(path) = self.local_path(key) {
            return Ok(match Storage::read_local(path, Some(range)).await? {
                Some((_, _, Some(blob))) => Some(Part::Bytes(blob)),
                Some((meta, _, None)) => Some(Part::Unsatisfiable(meta)),
                None => None,
            });
        }
        let Ok(location) = ObjectPath::parse(key) else {
            return Ok(None);
        };
        // S3 refuses `bytes=-0` outright, and it selects nothing anyway.
        let failure = if matches!(range, GetRange::Suffix(0)) {
            None
        } else {
            let options = GetOptions {
                range: Some(range.clone()),
                ..GetOptions::default()
            };
            match self.store.get_opts(&location, options).await {
                Ok(result) if !result.range.is_empty() => {
                    return Ok(Some(Part::Bytes(Blob::from(result))));
                }
                Ok(_) => None,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => Some(e),
            }
        };
        // Each backend words an unsatisfiable range its own way (a local error, an S3 416):
        // the object's size says whether that is what the failure was.
        let Some(meta) = self.head(key).await? else {
            return Ok(None);
        };
        let selects_nothing = !range.as_range(meta.size).is_ok_and(|r| !r.is_empty());
        match failure {
            Some(e) if !selects_nothing => Err(e.into()),
            _ => Ok(Some(Part::Unsatisfiable(meta))),
        }
    }

    /// The object's size and age without its bytes (an S3 `HEAD`), or `None` when there is none.
    pub async fn head(&self, key: &str) -> anyhow::Result<Option<Meta>> {
        if let Some(path) = self.local_path(key) {
            let opened = tokio::task::spawn_blocking(move || Storage::open_local(path)).await??;
            return Ok(opened.map(|opened| opened.meta));
        }
        let Ok(location) = ObjectPath::parse(key) else {
            return Ok(None);
        };
        match self.store.head(&location).await {
            Ok(meta) => Ok(Some(Meta::from(&meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the object; removing one that is not there is not an error.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let location = ObjectPath::parse(key)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object's key and last-modified time.
    pub async fn list(&self) -> anyhow::Result<Vec<(String, std::time::SystemTime)>> {
        use futures_util::TryStreamExt;
        let objects: Vec<_> = self.store.list(None).try_collect().await?;
        Ok(objects
            .into_iter()
            .map(|meta| (meta.location.to_string(), meta.last_modified.into()))
            .collect())
    }
}
