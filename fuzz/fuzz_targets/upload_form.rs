//! The upload form reader over any body: never a panic; a stored file is exactly the bytes its
//! digests and size describe and within its limit; and the answer does not depend on how the
//! body was cut into chunks on the way in (the first byte chooses the cut), so a form means the
//! same to wharf whatever the network did to it.
#![no_main]

use std::convert::Infallible;
use std::path::Path;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use wharf_packaging::upload_form::{self, LimitFor, Refused, UploadForm};

/// The seeds' boundary.
const BOUNDARY: &str = "fuzzboundary";
const LIMIT: u64 = 64 * 1024;

struct Fixed;

impl LimitFor for Fixed {
    type Error = Infallible;
    async fn limit_for(&self, _: &[(String, String)]) -> Result<(u64, String), Infallible> {
        Ok((LIMIT, "fuzz".into()))
    }
}

/// What a reading comes to, comparable across cuts.
#[derive(Debug, PartialEq)]
enum Outcome {
    Read {
        fields: Vec<(String, String)>,
        file: Option<(String, u64, String)>,
    },
    Refused(String),
}

fn read(body: &[u8], cut: usize, dir: &Path) -> Outcome {
    let chunks: Vec<Result<Bytes, Infallible>> = body
        .chunks(cut)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    let stream = futures_util::stream::iter(chunks);
    match futures_executor::block_on(upload_form::read(stream, BOUNDARY, dir, &Fixed)) {
        Ok(UploadForm { fields, content }) => {
            let file = content.map(|content| {
                let bytes = std::fs::read(content.file.path()).expect("the stored file");
                assert_eq!(bytes.len() as u64, content.size);
                assert!(content.size <= LIMIT, "{} over the limit", content.size);
                assert_eq!(hex::encode(Sha256::digest(&bytes)), content.sha256);
                (content.filename, content.size, content.sha256)
            });
            Outcome::Read { fields, file }
        }
        // Which of multer's words a truncated body gets may depend on where it was cut.
        Err(Refused::Form(upload_form::FormError::Malformed(_))) => {
            Outcome::Refused("malformed".into())
        }
        Err(Refused::Form(error)) => Outcome::Refused(error.to_string()),
        Err(Refused::Limit(never)) => match never {},
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let whole = read(body, body.len().max(1), dir.path());
    let cut = read(body, usize::from(cut % 64) + 1, dir.path());
    assert_eq!(whole, cut, "the same body, cut differently, read differently");
    // Nothing is left behind in the temporary directory once the form is dropped.
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
});
