//! `pypi-` tokens: decoding never panics and round-trips, and no mutation of a valid token
//! that changes what it says verifies. Input: edits (op, position, byte) applied to a valid
//! token; the same bytes are also tried as a token and as a caveat of their own.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wharf_macaroon::{Caveat, Context, Macaroon, ProjectRef, verify};

const KEY: &[u8] = b"a root key of thirty-two bytes!!";
const USER: &str = "5b6a2c1e-0000-4000-8000-000000000001";

static VALID: LazyLock<(Macaroon, String)> = LazyLock::new(|| {
    let mut m = Macaroon::new("pypi.org", b"{\"version\":1,\"id\":\"0d2c4e6f\"}", KEY);
    m.add_first_party_caveat(
        Caveat::Expiration {
            expires_at: 2_000_000_000,
            not_before: 1_000_000_000,
        }
        .to_json()
        .as_bytes(),
    );
    m.add_first_party_caveat(
        Caveat::ProjectName(vec!["sampleproject".into()])
            .to_json()
            .as_bytes(),
    );
    m.add_first_party_caveat(Caveat::RequestUser(USER.into()).to_json().as_bytes());
    let token = m.to_token();
    (m, token)
});

fn context() -> Context<'static> {
    Context {
        now: 1_500_000_000,
        user_id: USER,
        project: Some(ProjectRef {
            normalized_name: "sampleproject",
            id: "p1",
        }),
        publisher: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let (valid, token) = &*VALID;
    assert!(verify(valid, KEY, &[], &context()).is_ok());
    let mut bytes = token.as_bytes().to_vec();
    for edit in data.chunks_exact(3) {
        let at = usize::from(edit[1]) * bytes.len() / 256;
        match edit[0] % 3 {
            0 if at < bytes.len() => bytes[at] = edit[2],
            1 => bytes.insert(at.min(bytes.len()), edit[2]),
            _ if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => {}
        }
    }
    if let Ok(mutated) = std::str::from_utf8(&bytes)
        && let Ok(m) = Macaroon::from_token(mutated)
        && verify(&m, KEY, &[], &context()).is_ok()
    {
        // Only spellings of the same token may verify (base64 padding or alphabet, location).
        assert_eq!(m.identifier(), valid.identifier(), "{mutated}");
        assert_eq!(m.caveats(), valid.caveats(), "{mutated}");
        assert_eq!(m.signature(), valid.signature(), "{mutated}");
    }
    if let Ok(raw) = std::str::from_utf8(data)
        && let Ok(m) = Macaroon::from_token(raw)
    {
        assert_eq!(Macaroon::from_token(&m.to_token()).as_ref(), Ok(&m));
        assert_eq!(Macaroon::deserialize(&m.serialize()).as_ref(), Ok(&m));
        let _ = verify(&m, KEY, &[raw.to_owned()], &context());
    }
    if let Ok(caveat) = Caveat::parse(data) {
        let _ = caveat.check(&context());
        assert_eq!(
            Caveat::parse(caveat.to_json().as_bytes()).as_ref(),
            Ok(&caveat)
        );
    }
});
