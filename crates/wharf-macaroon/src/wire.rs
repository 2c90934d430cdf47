//! The version 2 binary macaroon encoding (libmacaroons / pymacaroons `MACAROON_V2`) and its
//! HMAC-SHA256 signature chain.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::TokenError;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 2;
const EOS: u64 = 0;
const LOCATION: u64 = 1;
const IDENTIFIER: u64 = 2;
const VID: u64 = 4;
const SIGNATURE: u64 = 6;
const KEY_GENERATOR: &[u8] = b"macaroons-key-generator";

/// A macaroon with first-party caveats only (PyPI issues no third-party caveats).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Macaroon {
    location: String,
    identifier: Vec<u8>,
    caveats: Vec<Vec<u8>>,
    signature: [u8; 32],
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(message);
    mac.finalize().into_bytes().into()
}

impl Macaroon {
    /// A new macaroon signed with `root_key` (derived as libmacaroons does).
    pub fn new(location: &str, identifier: &[u8], root_key: &[u8]) -> Macaroon {
        let derived = hmac(KEY_GENERATOR, root_key);
        Macaroon {
            location: location.to_owned(),
            identifier: identifier.to_vec(),
            caveats: Vec::new(),
            signature: hmac(&derived, identifier),
        }
    }

    /// Attenuates the macaroon: anyone holding it may add a caveat, nobody may remove one.
    pub fn add_first_party_caveat(&mut self, caveat: &[u8]) {
        self.signature = hmac(&self.signature, caveat);
        self.caveats.push(caveat.to_vec());
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn identifier(&self) -> &[u8] {
        &self.identifier
    }

    pub fn caveats(&self) -> &[Vec<u8>] {
        &self.caveats
    }

    pub fn signature(&self) -> &[u8; 32] {
        &self.signature
    }

    /// Recomputes the chain from `root_key` and compares in constant time.
    pub fn signature_matches(&self, root_key: &[u8]) -> bool {
        let derived = hmac(KEY_GENERATOR, root_key);
        let mut expected = hmac(&derived, &self.identifier);
        for caveat in &self.caveats {
            expected = hmac(&expected, caveat);
        }
        expected.ct_eq(&self.signature).into()
    }

    pub fn serialize(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        if !self.location.is_empty() {
            put_field(&mut out, LOCATION, self.location.as_bytes());
        }
        put_field(&mut out, IDENTIFIER, &self.identifier);
        put_varint(&mut out, EOS);
        for caveat in &self.caveats {
            put_field(&mut out, IDENTIFIER, caveat);
            put_varint(&mut out, EOS);
        }
        put_varint(&mut out, EOS);
        put_field(&mut out, SIGNATURE, &self.signature);
        out
    }

    pub fn deserialize(bytes: &[u8]) -> Result<Macaroon, TokenError> {
        let mut reader = Reader { bytes, pos: 0 };
        if reader.byte()? != VERSION {
            return Err(TokenError::Malformed(
                "only version 2 macaroons are supported",
            ));
        }
        let mut field = reader.field()?;
        let mut location = String::new();
        if field.0 == LOCATION {
            location = String::from_utf8(field.1.to_vec())
                .map_err(|_| TokenError::Malformed("location is not UTF-8"))?;
            field = reader.field()?;
        }
        if field.0 != IDENTIFIER {
            return Err(TokenError::Malformed("missing identifier"));
        }
        let identifier = field.1.to_vec();
        if reader.field()?.0 != EOS {
            return Err(TokenError::Malformed("unexpected field after identifier"));
        }
        let mut caveats = Vec::new();
        loop {
            let mut field = reader.field()?;
            if field.0 == EOS {
                break;
            }
            if field.0 == LOCATION {
                // A caveat location is only meaningful for third-party caveats.
                field = reader.field()?;
            }
            if field.0 != IDENTIFIER {
                return Err(TokenError::Malformed("caveat without identifier"));
            }
            caveats.push(field.1.to_vec());
            match reader.field()?.0 {
                EOS => {}
                VID => {
                    return Err(TokenError::Malformed(
                        "third-party caveats are not supported",
                    ));
                }
                _ => return Err(TokenError::Malformed("unexpected field in caveat")),
            }
        }
        let (kind, data) = reader.field()?;
        if kind != SIGNATURE {
            return Err(TokenError::Malformed("missing signature"));
        }
        let signature: [u8; 32] = data
            .try_into()
            .map_err(|_| TokenError::Malformed("signature is not 32 bytes"))?;
        if reader.pos != bytes.len() {
            return Err(TokenError::Malformed("trailing bytes"));
        }
        Ok(Macaroon {
            location,
            identifier,
            caveats,
            signature,
        })
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_field(out: &mut Vec<u8>, kind: u64, data: &[u8]) {
    put_varint(out, kind);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, TokenError> {
        let byte = *self
            .bytes
            .get(self.pos)
            .ok_or(TokenError::Malformed("truncated"))?;
        self.pos += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, TokenError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(TokenError::Malformed("varint too long"))
    }

    /// One `(type, data)` packet; EOS has no length or data.
    fn field(&mut self) -> Result<(u64, &'a [u8]), TokenError> {
        let kind = self.varint()?;
        if kind == EOS {
            return Ok((EOS, &[]));
        }
        let len = usize::try_from(self.varint()?).map_err(|_| TokenError::Malformed("length"))?;
        let end = self
            .pos
            .checked_add(len)
            .ok_or(TokenError::Malformed("length"))?;
        let data = self
            .bytes
            .get(self.pos..end)
            .ok_or(TokenError::Malformed("truncated"))?;
        self.pos = end;
        Ok((kind, data))
    }
}
