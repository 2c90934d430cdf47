//! `allowed_platform_tags`: wheels with plain platform tags (`linux_x86_64`) are refused as on
//! PyPI unless the setting lists them or a pattern matches.

use crate::util::{TestApp, UploadForm, wheel_bytes};

fn platform_wheel(version: &str, platform: &str) -> UploadForm {
    UploadForm::new(
        "inhouse",
        version,
        &format!("inhouse-{version}-cp312-cp312-{platform}.whl"),
        wheel_bytes("inhouse", version, &[]),
    )
}

#[tokio::test]
async fn plain_platform_tags_are_refused_by_default_with_pypis_message() {
    let app = TestApp::new().await;
    let before = app.snapshot().await;
    let response = app
        .upload(Some(&app.token), &platform_wheel("1.0", "linux_x86_64"))
        .await;
    assert_eq!(response.status, 400, "{}", response.text());
    assert_eq!(
        response.message(),
        "Binary wheel 'inhouse-1.0-cp312-cp312-linux_x86_64.whl' has an unsupported platform tag 'linux_x86_64'."
    );
    assert_eq!(app.snapshot().await, before);
    // PyPI's own tags are still accepted.
    let response = app
        .upload(
            Some(&app.token),
            &platform_wheel("1.0", "manylinux_2_28_x86_64"),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
}

#[tokio::test]
async fn listed_tags_and_patterns_are_accepted_and_others_still_refused() {
    let app = TestApp::with_settings(|s| {
        s.allowed_platform_tags =
            wharf::config::AllowedPlatformTags::parse(["linux_x86_64", "freebsd_*"]).expect("tags");
    })
    .await;
    for (version, platform) in [("1.0", "linux_x86_64"), ("1.1", "freebsd_14_0_amd64")] {
        let response = app
            .upload(Some(&app.token), &platform_wheel(version, platform))
            .await;
        assert_eq!(response.status, 200, "{platform}: {}", response.text());
    }
    let simple = app.get("/simple/inhouse/").await.text();
    assert!(
        simple.contains("inhouse-1.0-cp312-cp312-linux_x86_64.whl"),
        "{simple}"
    );
    let before = app.snapshot().await;
    let response = app
        .upload(Some(&app.token), &platform_wheel("1.2", "linux_aarch64"))
        .await;
    assert_eq!(response.status, 400);
    assert!(
        response
            .message()
            .contains("unsupported platform tag 'linux_aarch64'"),
        "{}",
        response.message()
    );
    assert_eq!(app.snapshot().await, before);
}
