use super::*;

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    key_hex: String,
    location: String,
    identifier: String,
    caveats: Vec<String>,
    signature_hex: String,
    token: String,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(include_str!("../tests/vectors/vectors.json")).expect("vectors parse")
}

fn key(v: &Vector) -> Vec<u8> {
    (0..v.key_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v.key_hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const USER: &str = "5b6a2c1e-0000-4000-8000-000000000001";

fn context(now: i64, project: Option<ProjectRef<'static>>) -> Context<'static> {
    Context {
        now,
        user_id: USER,
        project,
        publisher: None,
    }
}

const SAMPLE: ProjectRef<'static> = ProjectRef {
    normalized_name: "sampleproject",
    id: "0d3f7a52-1111-4000-8000-00000000abcd",
};

#[test]
fn minting_reproduces_pymacaroons_bytes() {
    for v in vectors()
        .iter()
        .filter(|v| v.name != "pypitoken restricted")
    {
        let mut m = Macaroon::new(&v.location, v.identifier.as_bytes(), &key(v));
        for c in &v.caveats {
            m.add_first_party_caveat(c.as_bytes());
        }
        assert_eq!(hex(m.signature()), v.signature_hex, "{}", v.name);
        assert_eq!(m.to_token(), v.token, "{}", v.name);
    }
}

#[test]
fn parses_and_verifies_every_vector() {
    for v in vectors() {
        let m = Macaroon::from_token(&v.token).expect(&v.name);
        assert_eq!(m.location(), v.location);
        assert_eq!(m.identifier(), v.identifier.as_bytes());
        let caveats: Vec<String> = m
            .caveats()
            .iter()
            .map(|c| String::from_utf8(c.clone()).expect("utf8"))
            .collect();
        assert_eq!(caveats, v.caveats, "{}", v.name);
        assert!(m.signature_matches(&key(&v)), "{}", v.name);
        assert!(!m.signature_matches(&[7u8; 32]), "{}", v.name);
        verify(&m, &key(&v), &[], &context(1_500_000_000, Some(SAMPLE))).expect(&v.name);
    }
}

#[test]
fn pypitoken_restrictions_are_honoured() {
    let v = vectors()
        .into_iter()
        .find(|v| v.name == "pypitoken restricted")
        .expect("vector");
    let m = Macaroon::from_token(&v.token).expect("parse");
    let other = ProjectRef {
        normalized_name: "other",
        id: "x",
    };
    let err = verify(&m, &key(&v), &[], &context(1_500_000_000, Some(other))).unwrap_err();
    // The legacy project caveat allows only sampleproject.
    assert_eq!(
        err.to_string(),
        "project-scoped token is not valid for project: 'other'"
    );
    let err = verify(&m, &key(&v), &[], &context(2_000_000_000, Some(SAMPLE))).unwrap_err();
    assert_eq!(err.to_string(), "token is expired", "each reason once");
}

#[test]
fn token_parsing_is_lenient_about_base64_and_strict_about_prefix() {
    let v = &vectors()[0];
    let raw = v.token.strip_prefix("pypi-").expect("prefix");
    let padded = format!("pypi-{raw}{}", "=".repeat((4 - raw.len() % 4) % 4));
    let standard = format!("pypi-{}", raw.replace('-', "+").replace('_', "/"));
    for token in [padded, standard] {
        assert_eq!(Macaroon::from_token(&token), Macaroon::from_token(&v.token));
    }
    assert_eq!(
        Macaroon::from_token(&format!("pypy-{raw}")),
        Err(TokenError::InvalidPrefix)
    );
    assert_eq!(
        Macaroon::from_token("pypi-"),
        Err(TokenError::InvalidPrefix)
    );
    assert_eq!(Macaroon::from_token("pypi"), Err(TokenError::InvalidPrefix));
    assert_eq!(
        Macaroon::from_token("pypi-!!!!"),
        Err(TokenError::InvalidBase64)
    );
    // Every truncation is an error, never a panic.
    let bytes = Macaroon::from_token(&v.token).expect("parse").serialize();
    for len in 0..bytes.len() {
        assert!(
            Macaroon::deserialize(&bytes[..len]).is_err(),
            "truncated to {len}"
        );
    }
}

#[test]
fn a_forged_caveat_breaks_the_signature() {
    let v = &vectors()[1];
    let m = Macaroon::from_token(&v.token).expect("parse");
    // Swap the project caveat for another project without re-signing.
    let mut bytes = m.serialize();
    let at = bytes
        .windows(13)
        .position(|w| w == b"sampleproject")
        .expect("caveat");
    bytes[at..at + 13].copy_from_slice(b"evilxproject!");
    let forged = Macaroon::deserialize(&bytes).expect("still well-formed");
    assert_eq!(
        verify(&forged, &key(v), &[], &context(0, Some(SAMPLE))),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn stored_caveats_are_checked_too() {
    let v = &vectors()[2]; // no caveats
    let m = Macaroon::from_token(&v.token).expect("parse");
    let stored = [Caveat::ProjectName(vec!["other".into()]).to_json()];
    let err = verify(&m, &key(v), &stored, &context(0, Some(SAMPLE))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "project-scoped token is not valid for project: 'sampleproject'"
    );
}

#[test]
fn every_caveat_kind_passes_and_fails() {
    let ctx = context(100, Some(SAMPLE));
    let cases: &[(&str, Result<(), &str>)] = &[
        ("[0,101,100]", Ok(())),
        ("[0,100,50]", Err("token is expired")),
        ("[0,200,150]", Err("token is expired")),
        (r#"[1,["sampleproject"]]"#, Ok(())),
        (
            r#"[1,["other"]]"#,
            Err("project-scoped token is not valid for project: 'sampleproject'"),
        ),
        (r#"[2,["0d3f7a52-1111-4000-8000-00000000abcd"]]"#, Ok(())),
        (
            r#"[2,["nope"]]"#,
            Err("project-scoped token is not valid for project: 'sampleproject'"),
        ),
        (r#"[3,"5b6a2c1e-0000-4000-8000-000000000001"]"#, Ok(())),
        (
            r#"[3,"someone-else"]"#,
            Err("current user does not match user restriction in token"),
        ),
        (
            r#"[4,"publisher"]"#,
            Err("OIDC scoped token used outside of an OIDC identified request"),
        ),
        (r#"{"version":1,"permissions":"user"}"#, Ok(())),
        (
            r#"{"version":1,"permissions":{"projects":["sampleproject"]}}"#,
            Ok(()),
        ),
        (
            r#"{"version":1,"permissions":{"projects":["x"]}}"#,
            Err("project-scoped token is not valid for project: 'sampleproject'"),
        ),
        (r#"{"exp":101,"nbf":100}"#, Ok(())),
        (r#"{"exp":100,"nbf":90}"#, Err("token is expired")),
        (
            r#"{"project_ids":["0d3f7a52-1111-4000-8000-00000000abcd"]}"#,
            Ok(()),
        ),
        ("[]", Err("caveat array cannot be empty")),
        ("[9]", Err("caveat has unknown tag: 9")),
        (r#"{"foo":1}"#, Err("caveat must be an array")),
        ("[0,\"1\",2]", Err("malformed caveat with tag 0")),
        ("[0,true,2]", Err("malformed caveat with tag 0")),
        ("[1,\"sampleproject\"]", Err("malformed caveat with tag 1")),
        ("[3]", Err("malformed caveat with tag 3")),
        ("not json", Err("caveat is not valid JSON")),
    ];
    for (raw, expected) in cases {
        let got = Caveat::parse(raw.as_bytes()).and_then(|c| c.check(&ctx));
        assert_eq!(got, expected.map_err(str::to_owned), "{raw}");
    }
    let no_project = context(100, None);
    assert_eq!(
        Caveat::ProjectName(vec!["a".into()]).check(&no_project),
        Err("project-scoped token used outside of a project context".to_owned())
    );
}

#[test]
fn the_publisher_caveat_passes_only_for_its_publisher_on_its_projects() {
    let projects = vec![SAMPLE.id.to_owned()];
    let publisher = |id: &'static str, projects: &'static [String]| Context {
        publisher: Some(PublisherRef {
            id,
            project_ids: projects,
        }),
        user_id: "",
        ..context(100, Some(SAMPLE))
    };
    let projects: &'static [String] = Box::leak(projects.into_boxed_slice());
    let caveat = Caveat::OidcPublisher("pub-1".into());
    assert_eq!(caveat.check(&publisher("pub-1", projects)), Ok(()));
    assert_eq!(
        caveat.check(&publisher("pub-2", projects)),
        Err("current OIDC publisher does not match publisher restriction in token".to_owned())
    );
    assert_eq!(
        caveat.check(&publisher("pub-1", &[])),
        Err("OIDC scoped token is not valid for project 'sampleproject'".to_owned())
    );
    let no_project = Context {
        project: None,
        ..publisher("pub-1", projects)
    };
    assert_eq!(
        caveat.check(&no_project),
        Err("OIDC scoped token used outside of a project context".to_owned())
    );
    // A user restriction never passes for a publisher, nor a publisher's for a user.
    assert_eq!(
        Caveat::RequestUser(String::new()).check(&publisher("pub-1", projects)),
        Err("token with user restriction without a user".to_owned())
    );
    assert!(caveat.check(&context(100, Some(SAMPLE))).is_err());
    assert_eq!(
        Caveat::parse(caveat.to_json().as_bytes()),
        Ok(caveat.clone())
    );
}

#[test]
fn caveats_serialise_compactly() {
    assert_eq!(
        Caveat::ProjectName(vec!["a".into(), "b".into()]).to_json(),
        r#"[1,["a","b"]]"#
    );
    assert_eq!(
        Caveat::Expiration {
            expires_at: 5,
            not_before: 1
        }
        .to_json(),
        "[0,5,1]"
    );
    assert_eq!(Caveat::RequestUser("u".into()).to_json(), r#"[3,"u"]"#);
    for c in [Caveat::ProjectId(vec!["i".into()]), Caveat::LegacyUser] {
        assert_eq!(Caveat::parse(c.to_json().as_bytes()), Ok(c));
    }
}
