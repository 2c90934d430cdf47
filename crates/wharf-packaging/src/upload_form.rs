//! Reading the upload form (`multipart/form-data`, as twine and every other client send it):
//! text fields into memory within a budget, the distribution file streamed to a temporary file
//! while it is hashed, its size limit enforced as the bytes arrive. The parser (multer) is never
//! allowed to hold more than [`MAX_UNREAD`] bytes it has not handed out, so a part whose headers
//! never end cannot grow the process.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use blake2::Blake2b;
use blake2::digest::consts::U32;
use bytes::Bytes;
use futures_util::Stream;
use md5::Md5;
use sha2::{Digest, Sha256};

/// Text fields may not exceed this in total (descriptions can be long, but not unbounded).
pub const MAX_TEXT_BYTES: usize = 8 * 1024 * 1024;

/// What the parser may read ahead of what it has handed out: a boundary and a part's headers
/// fit many times over; more is a part whose headers never end.
pub const MAX_UNREAD: u64 = 1024 * 1024;

/// The uploaded distribution, on local disk, with its digests.
pub struct Content {
    pub filename: String,
    pub content_type: Option<String>,
    pub file: tempfile::NamedTempFile,
    pub size: u64,
    pub md5: String,
    pub sha256: String,
    pub blake2_256: String,
}

pub struct UploadForm {
    pub fields: Vec<(String, String)>,
    pub content: Option<Content>,
}

impl UploadForm {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Decides the size limit for the file once the fields read so far are known (Warehouse's
/// limit depends on the project, named by the `name` field that clients send first): the limit
/// in bytes and the project's name for the message.
pub trait LimitFor {
    type Error;
    fn limit_for(
        &self,
        fields: &[(String, String)],
    ) -> impl Future<Output = Result<(u64, String), Self::Error>> + Send;
}

/// Why a form could not be read: the form's own fault ([`FormError`]) or the limit decider's.
#[derive(Debug)]
pub enum Refused<E> {
    Form(FormError),
    Limit(E),
}

impl<E> From<FormError> for Refused<E> {
    fn from(error: FormError) -> Self {
        Refused::Form(error)
    }
}

impl<E> From<std::io::Error> for Refused<E> {
    fn from(error: std::io::Error) -> Self {
        Refused::Form(FormError::Io(error))
    }
}

/// What is wrong with a form, in the words its sender reads.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("Malformed multipart/form-data request: {0}")]
    Malformed(String),
    #[error(
        "Malformed multipart/form-data request: a part's headers run over {MAX_UNREAD} bytes without ending."
    )]
    HeadersTooLong,
    #[error("Upload payload has more than one file.")]
    MoreThanOneFile,
    #[error("{0}: Should not be a tuple.")]
    Tuple(String),
    #[error("The upload form's fields are too large.")]
    FieldsTooLarge,
    #[error("{0}: Field is not valid UTF-8.")]
    NotUtf8(String),
    #[error("The file for project '{project}' is over its limit of {limit} bytes.")]
    FileTooLarge { project: String, limit: u64 },
    /// Writing the temporary file failed (a full disk, typically).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The boundary of a `multipart/form-data` Content-Type, if it is one.
pub fn boundary(content_type: &str) -> Option<String> {
    multer::parse_boundary(content_type).ok()
}

/// Reads the form from `body`, a stream of the request's bytes.
pub async fn read<S, E, L>(
    body: S,
    boundary: &str,
    tmp_dir: &Path,
    limits: &L,
) -> Result<UploadForm, Refused<L::Error>>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    L: LimitFor,
{
    let progress = Arc::new(Progress::default());
    let guarded = Guarded {
        inner: Box::pin(body),
        progress: progress.clone(),
        paused_at: None,
    };
    let mut multipart = multer::Multipart::new(guarded, boundary);
    let malformed = |error: multer::Error| {
        Refused::Form(if progress.overrun.load(Ordering::Relaxed) {
            FormError::HeadersTooLong
        } else {
            FormError::Malformed(error.to_string())
        })
    };
    let mut fields = Vec::new();
    let mut text_bytes = 0usize;
    let mut content = None;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        progress.mark();
        let name = field.name().unwrap_or_default().to_owned();
        match (name.as_str(), field.file_name()) {
            ("content", _) => {
                if content.is_some() {
                    return Err(FormError::MoreThanOneFile.into());
                }
                let (limit, project) = limits.limit_for(&fields).await.map_err(Refused::Limit)?;
                let filename = field.file_name().unwrap_or_default().to_owned();
                let content_type = field.content_type().map(ToString::to_string);
                let mut file = tempfile::NamedTempFile::new_in(tmp_dir)?;
                let mut hashes = Hashes::default();
                let mut size = 0u64;
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    progress.mark();
                    size += chunk.len() as u64;
                    if size > limit {
                        return Err(FormError::FileTooLarge { project, limit }.into());
                    }
                    hashes.update(&chunk);
                    // Small synchronous writes to a local temporary file: cheaper than a
                    // blocking task each.
                    file.write_all(&chunk)?;
                }
                file.flush()?;
                let (md5, sha256, blake2_256) = hashes.finish();
                content = Some(Content {
                    filename,
                    content_type,
                    file,
                    size,
                    md5,
                    sha256,
                    blake2_256,
                });
            }
            // Signatures are no longer stored (PyPI removed PGP support in 2023).
            ("gpg_signature", _) => {
                while field.chunk().await.map_err(malformed)?.is_some() {
                    progress.mark();
                }
            }
            (_, Some(_)) => return Err(FormError::Tuple(name).into()),
            _ => {
                // Chunk by chunk, so that the budget holds before the bytes are kept.
                let mut value = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    progress.mark();
                    text_bytes += chunk.len();
                    if text_bytes > MAX_TEXT_BYTES {
                        return Err(FormError::FieldsTooLarge.into());
                    }
                    value.extend_from_slice(&chunk);
                }
                let value =
                    String::from_utf8(value).map_err(|_| FormError::NotUtf8(name.clone()))?;
                fields.push((name, value));
            }
        }
    }
    Ok(UploadForm { fields, content })
}

#[derive(Default)]
struct Hashes {
    md5: Md5,
    sha256: Sha256,
    blake2: Blake2b<U32>,
}

impl Hashes {
    fn update(&mut self, bytes: &[u8]) {
        self.md5.update(bytes);
        self.sha256.update(bytes);
        self.blake2.update(bytes);
    }

    fn finish(self) -> (String, String, String) {
        (
            hex::encode(self.md5.finalize()),
            hex::encode(self.sha256.finalize()),
            hex::encode(self.blake2.finalize()),
        )
    }
}

/// How far the body has been read, and how far the reader has been handed it.
#[derive(Default)]
struct Progress {
    delivered: AtomicU64,
    marked: AtomicU64,
    overrun: AtomicBool,
}

impl Progress {
    /// The reader got something out of the parser: what was delivered so far is accounted for.
    fn mark(&self) {
        self.marked
            .store(self.delivered.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// The body as the parser sees it. When the parser holds more than [`MAX_UNREAD`] bytes it has
/// not handed out, the stream pauses once (waking itself, so that the parser works through its
/// buffer); if that brings no progress, the stream fails.
struct Guarded<S> {
    inner: Pin<Box<S>>,
    progress: Arc<Progress>,
    /// The mark at the last pause.
    paused_at: Option<u64>,
}

impl<S, E> Stream for Guarded<S>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let delivered = self.progress.delivered.load(Ordering::Relaxed);
        let marked = self.progress.marked.load(Ordering::Relaxed);
        if delivered - marked > MAX_UNREAD {
            if self.paused_at == Some(marked) {
                self.progress.overrun.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err("a part's headers do not end".into())));
            }
            self.paused_at = Some(marked);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                self.progress
                    .delivered
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    struct Fixed(u64);

    impl LimitFor for Fixed {
        type Error = Infallible;
        async fn limit_for(&self, _: &[(String, String)]) -> Result<(u64, String), Infallible> {
            Ok((self.0, "demo".into()))
        }
    }

    const BOUNDARY: &str = "wharfboundary";

    fn part(name: &str, filename: Option<&str>, value: &[u8]) -> Vec<u8> {
        let mut out = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"");
        if let Some(filename) = filename {
            out.push_str(&format!("; filename=\"{filename}\""));
        }
        out.push_str("\r\n\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
        out
    }

    fn body(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = parts.concat();
        out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        out
    }

    /// Reads `chunks` as a body into `dir`, and how many bytes the reader pulled out of them.
    fn read_into(
        dir: &Path,
        chunks: impl Iterator<Item = Vec<u8>> + Send + 'static,
        limit: u64,
    ) -> (Result<UploadForm, FormError>, u64) {
        let pulled = Arc::new(AtomicU64::new(0));
        let counter = pulled.clone();
        let stream = futures_util::stream::iter(chunks.map(move |chunk| {
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            Ok::<_, Infallible>(Bytes::from(chunk))
        }));
        let form = futures_executor::block_on(read(stream, BOUNDARY, dir, &Fixed(limit))).map_err(
            |refused| match refused {
                Refused::Form(error) => error,
                Refused::Limit(never) => match never {},
            },
        );
        (form, pulled.load(Ordering::Relaxed))
    }

    fn read_chunks(
        chunks: impl Iterator<Item = Vec<u8>> + Send + 'static,
        limit: u64,
    ) -> (Result<UploadForm, FormError>, u64) {
        read_into(&std::env::temp_dir(), chunks, limit)
    }

    #[test]
    fn fields_and_the_file_are_read_and_hashed() {
        let bytes = body(&[
            part("name", None, b"demo"),
            part("content", Some("demo-1.0.tar.gz"), b"archive bytes"),
        ]);
        let (form, _) = read_chunks(
            bytes
                .chunks(3)
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
                .into_iter(),
            100,
        );
        let form = form.expect("read");
        assert_eq!(form.get("name"), Some("demo"));
        let content = form.content.expect("content");
        assert_eq!(content.filename, "demo-1.0.tar.gz");
        assert_eq!(content.size, 13);
        assert_eq!(
            content.sha256,
            hex::encode(Sha256::digest(b"archive bytes"))
        );
        assert_eq!(
            std::fs::read(content.file.path()).expect("file"),
            b"archive bytes"
        );
    }

    #[test]
    fn headers_that_never_end_are_refused_after_a_bounded_read() {
        let start = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"x\"\r\nX: ")
            .into_bytes();
        // 64 MiB of one header line, offered in 64 KiB chunks.
        let chunks = std::iter::once(start).chain(std::iter::repeat_n(vec![b'a'; 65536], 1024));
        let (form, pulled) = read_chunks(chunks, 100);
        assert!(
            matches!(form, Err(FormError::HeadersTooLong)),
            "{:?}",
            form.err()
        );
        assert!(pulled < 2 * MAX_UNREAD, "pulled {pulled} bytes");
    }

    #[test]
    fn a_huge_text_field_is_refused_before_it_is_kept() {
        let start =
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"summary\"\r\n\r\n")
                .into_bytes();
        let chunks = std::iter::once(start).chain(std::iter::repeat_n(vec![b'a'; 65536], 1024));
        let (form, pulled) = read_chunks(chunks, 100);
        assert!(
            matches!(form, Err(FormError::FieldsTooLarge)),
            "{:?}",
            form.err()
        );
        assert!(
            pulled < MAX_TEXT_BYTES as u64 + 2 * MAX_UNREAD,
            "pulled {pulled} bytes"
        );
    }

    #[test]
    fn a_file_over_its_limit_and_a_second_file_are_refused() {
        let big = body(&[part("content", Some("a.whl"), &[0; 101])]);
        let (form, _) = read_chunks(std::iter::once(big), 100);
        assert!(matches!(
            form,
            Err(FormError::FileTooLarge { limit: 100, .. })
        ));
        let two = body(&[
            part("content", Some("a.whl"), b"1"),
            part("content", Some("b.whl"), b"2"),
        ]);
        let (form, _) = read_chunks(std::iter::once(two), 100);
        assert!(matches!(form, Err(FormError::MoreThanOneFile)));
        let tuple = body(&[part("summary", Some("s.txt"), b"x")]);
        let (form, _) = read_chunks(std::iter::once(tuple), 100);
        assert!(matches!(form, Err(FormError::Tuple(name)) if name == "summary"));
        let latin1 = body(&[part("summary", None, b"caf\xe9")]);
        let (form, _) = read_chunks(std::iter::once(latin1), 100);
        assert!(matches!(form, Err(FormError::NotUtf8(name)) if name == "summary"));
        let cut = part("name", None, b"demo");
        let (form, _) = read_chunks(std::iter::once(cut), 100);
        assert!(matches!(form, Err(FormError::Malformed(_))));
    }
}
