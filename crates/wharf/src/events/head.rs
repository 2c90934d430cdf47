//! The audit chain's signed head: the newest place and hash, signed with the server key and
//! written where the events' writers cannot reach (the log output, a head file in the data
//! directory, the shared `audit_heads` row), and read back for `verify` to check the chain
//! against. See `events::chain`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::chain::ChainError;
use crate::db::Db;
use crate::signing::ServerKey;

/// The purpose of the head's signature (never shared with other uses of the server key).
const HEAD_PURPOSE: &str = "audit-head";
/// The head file, in the data directory.
pub const HEAD_FILE: &str = "audit-head";

/// A place and hash the chain must still have: a head from the log output or given by hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

impl Head {
    /// `SEQ:HASH`, as in the log line `audit head seq=SEQ hash=HASH …`.
    pub fn parse(text: &str) -> Result<Head, String> {
        let invalid = || {
            format!(
                "'{text}' is not SEQ:HASH (a place and a 64-character hex hash, as in the log line \"audit head seq=… hash=…\")"
            )
        };
        let (seq, hash) = text.trim().split_once(':').ok_or_else(invalid)?;
        let seq: i64 = seq.parse().map_err(|_| invalid())?;
        let hash = hash.to_ascii_lowercase();
        if seq < 1 || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        Ok(Head { seq, hash })
    }
}

/// A head as the sealer writes it: signed with the server key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHead {
    pub seq: i64,
    pub hash: String,
    /// Unix microseconds.
    pub time: i64,
    pub signature: String,
}

impl SignedHead {
    fn new(keys: &ServerKey, seq: i64, hash: String, time: i64) -> SignedHead {
        let signature = keys.tag(HEAD_PURPOSE, &head_text(seq, &hash, time));
        SignedHead {
            seq,
            hash,
            time,
            signature,
        }
    }

    fn is_signed_by(&self, keys: &ServerKey) -> bool {
        keys.check_tag(
            HEAD_PURPOSE,
            &head_text(self.seq, &self.hash, self.time),
            &self.signature,
        )
    }

    /// `seq=… hash=… time=… sig=…`: the head file's content and the log line's.
    pub fn line(&self) -> String {
        format!(
            "seq={} hash={} time={} sig={}",
            self.seq, self.hash, self.time, self.signature
        )
    }

    fn parse_line(line: &str) -> Option<SignedHead> {
        let mut fields = BTreeMap::new();
        for part in line.split_whitespace() {
            let (name, value) = part.split_once('=')?;
            fields.insert(name, value);
        }
        Some(SignedHead {
            seq: fields.get("seq")?.parse().ok()?,
            hash: (*fields.get("hash")?).to_owned(),
            time: fields.get("time")?.parse().ok()?,
            signature: (*fields.get("sig")?).to_owned(),
        })
    }
}

fn head_text(seq: i64, hash: &str, time: i64) -> String {
    format!("{seq}:{hash}:{time}")
}

pub fn head_file(data_dir: &Path) -> PathBuf {
    data_dir.join(HEAD_FILE)
}

fn read_head_file(path: &Path) -> Result<Option<SignedHead>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => SignedHead::parse_line(text.trim())
            .map(Some)
            .ok_or_else(|| format!("the head file {} is not a signed head", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read the head file {}: {e}", path.display())),
    }
}

/// Signs the chain's newest sealed event as its head and writes it out of the events table's
/// reach: to the log output (an info line), to the head file in `data_dir` (replaced whole) and
/// to the shared head row (kept only when newer than the one there). Does nothing and returns
/// `None` when nothing is sealed, or nothing since the head at `previous`.
pub async fn write_head(
    db: &Db,
    keys: &ServerKey,
    data_dir: &Path,
    now_micros: i64,
    previous: Option<i64>,
) -> Result<Option<SignedHead>, ChainError> {
    let last: Option<(i64, String)> = sqlx::query_as(
        "SELECT seq, hash FROM events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(db.pool())
    .await?;
    let Some((seq, hash)) = last else {
        return Ok(None);
    };
    if previous == Some(seq) {
        return Ok(None);
    }
    let head = SignedHead::new(keys, seq, hash, now_micros);
    tracing::info!("audit head {}", head.line());
    let path = head_file(data_dir);
    // Another process on the same data directory may have written a newer one.
    let newer_there = matches!(read_head_file(&path), Ok(Some(there)) if there.seq > seq);
    if !newer_there {
        let tmp = data_dir.join(format!("{HEAD_FILE}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, format!("{}\n", head.line()))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                ChainError::Broken(format!(
                    "cannot write the head file {}: {e}",
                    path.display()
                ))
            })?;
    }
    sqlx::query(
        "INSERT INTO audit_heads (id, seq, hash, time, signature) VALUES (1, $1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
           time = excluded.time, signature = excluded.signature \
         WHERE audit_heads.seq < excluded.seq",
    )
    .bind(head.seq)
    .bind(&head.hash)
    .bind(head.time)
    .bind(&head.signature)
    .execute(db.pool())
    .await?;
    Ok(Some(head))
}

/// The heads `verify` checks the chain against: the shared row, this data directory's head
/// file and the one given. A stored head that the server key did not sign is itself a problem.
pub(super) async fn heads(
    db: &Db,
    keys: &ServerKey,
    data_dir: &Path,
    given: Option<&Head>,
) -> Result<Result<BTreeMap<i64, Vec<(String, String)>>, String>, ChainError> {
    let mut heads: BTreeMap<i64, Vec<(String, String)>> = BTreeMap::new();
    let row: Option<(i64, String, i64, String)> =
        sqlx::query_as("SELECT seq, hash, time, signature FROM audit_heads WHERE id = 1")
            .fetch_optional(db.pool())
            .await?;
    let path = head_file(data_dir);
    let file = match read_head_file(&path) {
        Ok(file) => file,
        Err(problem) => return Ok(Err(problem)),
    };
    let stored = row
        .map(|(seq, hash, time, signature)| {
            (
                SignedHead {
                    seq,
                    hash,
                    time,
                    signature,
                },
                "the signed head in the database".to_owned(),
            )
        })
        .into_iter()
        .chain(file.map(|head| (head, format!("the head file {}", path.display()))));
    for (head, source) in stored {
        if !head.is_signed_by(keys) {
            return Ok(Err(format!(
                "{source} (event {}) is not signed by this server's key: it was altered",
                head.seq
            )));
        }
        heads.entry(head.seq).or_default().push((head.hash, source));
    }
    if let Some(head) = given {
        heads
            .entry(head.seq)
            .or_default()
            .push((head.hash.clone(), "the head given".to_owned()));
    }
    Ok(Ok(heads))
}
