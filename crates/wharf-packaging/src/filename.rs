//! Distribution filenames: the characters allowed, wheel names (the binary distribution
//! format spec, as `packaging.utils.parse_wheel_filename` reads them), PEP 625 sdist names and
//! the platform tags an index accepts.

use std::sync::LazyLock;

use regex::Regex;

use crate::version::{self, Version};

/// The two kinds of distribution an index accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackageType {
    Sdist,
    BdistWheel,
}

impl PackageType {
    pub fn parse(filetype: &str) -> Option<PackageType> {
        match filetype {
            "sdist" => Some(PackageType::Sdist),
            "bdist_wheel" => Some(PackageType::BdistWheel),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PackageType::Sdist => "sdist",
            PackageType::BdistWheel => "bdist_wheel",
        }
    }
}

/// Refuses control characters and path separators, then requires an extension that fits the
/// package type (`.tar.gz`/`.zip` for sdists, `.whl` for wheels).
pub fn check_filename(filename: &str, package_type: PackageType) -> Result<(), String> {
    if filename.bytes().any(|b| b < 32 || b == 127) {
        return Err(
            "Cannot upload a file with non-printable characters (ordinals 0-31, 127) in the name."
                .into(),
        );
    }
    if filename.contains(['/', '\\']) {
        return Err("Cannot upload a file with '/' or '\\' in the name.".into());
    }
    let lower = filename.to_ascii_lowercase();
    let extension = [".tar.gz", ".zip", ".whl"]
        .into_iter()
        .find(|ext| lower.len() > ext.len() && lower.ends_with(ext))
        .ok_or("Invalid file extension: Use .tar.gz, .whl or .zip extension. See https://www.python.org/dev/peps/pep-0527 and https://peps.python.org/pep-0715/ for more information")?;
    let fits = match package_type {
        PackageType::Sdist => extension != ".whl",
        PackageType::BdistWheel => extension == ".whl",
    };
    if !fits {
        return Err(format!(
            "Invalid file extension: Extension {extension} is invalid for filetype {}. See https://www.python.org/dev/peps/pep-0527 for more information.",
            package_type.as_str()
        ));
    }
    Ok(())
}

/// The sdist filename PEP 625 requires: `{normalized_name_with_underscores}-{version}.tar.gz`.
pub fn expected_sdist_filename(normalized_name: &str, version: &Version) -> String {
    format!("{}-{version}.tar.gz", normalized_name.replace('-', "_"))
}

/// A parsed wheel filename.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WheelFilename {
    /// The name exactly as written in the filename.
    pub name: String,
    pub version: Version,
    pub build: Option<String>,
    pub python_tags: Vec<String>,
    pub abi_tags: Vec<String>,
    pub platform_tags: Vec<String>,
}

// packaging's `^[\w._]+\Z`: not empty (an empty name would make "-1.0-py3-none-any.whl" a
// wheel of no project).
static WHEEL_NAME_PART: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\w._]+$").unwrap_or_else(|_| unreachable!()));

impl WheelFilename {
    /// Parses with `packaging.utils.parse_wheel_filename`'s rules and messages.
    pub fn parse(filename: &str) -> Result<WheelFilename, String> {
        let stem = filename.strip_suffix(".whl").ok_or_else(|| {
            format!("Invalid wheel filename (extension must be '.whl'): {filename}")
        })?;
        let parts: Vec<&str> = stem.split('-').collect();
        if !(5..=6).contains(&parts.len()) {
            return Err(format!(
                "Invalid wheel filename (wrong number of parts): {filename}"
            ));
        }
        let name = parts[0];
        if name.contains("__") || !WHEEL_NAME_PART.is_match(name) {
            return Err(format!("Invalid project name: {filename}"));
        }
        let version = version::parse(parts[1])
            .map_err(|_| format!("Invalid wheel filename (invalid version): {filename}"))?;
        let build = if parts.len() == 6 {
            let build = parts[2];
            // packaging's `(\d+)(.*)\Z`: `.` does not match a newline.
            if !build.starts_with(|c: char| c.is_ascii_digit()) || build.contains('\n') {
                return Err(format!("Invalid build number: {build} in '{filename}'"));
            }
            Some(build.to_owned())
        } else {
            None
        };
        let tags = &parts[parts.len() - 3..];
        // Tags end up in paths, pages and installers' caches: letters, digits and '_' only,
        // '.' between compressed tags, none empty.
        let split = |kind: &str, s: &str| -> Result<Vec<String>, String> {
            s.split('.')
                .map(|tag| {
                    if !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        Ok(tag.to_owned())
                    } else {
                        Err(format!(
                            "Invalid wheel filename (invalid {kind} tag '{s}', use only [A-Za-z0-9_.]): {filename}"
                        ))
                    }
                })
                .collect()
        };
        Ok(WheelFilename {
            name: name.to_owned(),
            version,
            build,
            python_tags: split("python", tags[0])?,
            abi_tags: split("ABI", tags[1])?,
            platform_tags: split("platform", tags[2])?,
        })
    }
}

/// `packaging.utils.parse_sdist_filename`: `.tar.gz` or `.zip`, split on the last `-`, a
/// name that is not empty (returned PEP 503-normalised) and a PEP 440 version.
pub fn parse_sdist_filename(filename: &str) -> Result<(String, Version), String> {
    let stem = filename
        .strip_suffix(".tar.gz")
        .or_else(|| filename.strip_suffix(".zip"))
        .ok_or_else(|| {
            format!("Invalid sdist filename (extension must be '.tar.gz' or '.zip'): {filename}")
        })?;
    let (name, raw_version) = stem
        .rsplit_once('-')
        .ok_or_else(|| format!("Invalid sdist filename: {filename}"))?;
    if name.is_empty() {
        return Err(format!(
            "Invalid sdist filename (empty project name): {filename}"
        ));
    }
    let version = version::parse(raw_version)
        .map_err(|_| format!("Invalid sdist filename (invalid version): {filename}"))?;
    Ok((crate::name::normalize(name), version))
}

const MACOS_ARCHS: &str = "ppc|ppc64|i386|x86_64|arm64|intel|fat|fat3|fat64|universal|universal2";
const MANYLINUX_ARCHS: &str = "x86_64|i686|aarch64|armv7l|ppc64le|s390x|riscv64|ppc64";
const MUSLLINUX_ARCHS: &str = "x86_64|i686|aarch64|armv7l|ppc64le|s390x|riscv64";

static PLATFORM_TAG: LazyLock<Regex> = LazyLock::new(|| {
    let fixed = [
        "any",
        "win32",
        "win_arm64",
        "win_amd64",
        "win_ia64",
        "manylinux1_x86_64",
        "manylinux1_i686",
        "manylinux2010_x86_64",
        "manylinux2010_i686",
        "manylinux2014_x86_64",
        "manylinux2014_i686",
        "manylinux2014_aarch64",
        "manylinux2014_armv7l",
        "manylinux2014_ppc64",
        "manylinux2014_ppc64le",
        "manylinux2014_s390x",
        "linux_armv6l",
        "linux_armv7l",
    ]
    .join("|");
    let pattern = format!(
        "^(?:{fixed}\
         |macosx_10_\\d+_(?:{MACOS_ARCHS})\
         |macosx_(?:11|12|13|14|15|26)_0_(?:{MACOS_ARCHS})\
         |manylinux_\\d+_\\d+_(?:{MANYLINUX_ARCHS})\
         |musllinux_\\d+_\\d+_(?:{MUSLLINUX_ARCHS})\
         |ios_\\d+_\\d+_(?:arm64|x86_64)_(?:iphoneos|iphonesimulator)\
         |android_\\d+_(?:armeabi_v7a|arm64_v8a|x86|x86_64)\
         |pyemscripten_\\d+_\\d+_wasm32)$"
    );
    Regex::new(&pattern).unwrap_or_else(|_| unreachable!())
});

/// Whether the index accepts wheels for this platform tag.
pub fn is_allowed_platform_tag(tag: &str) -> bool {
    PLATFORM_TAG.is_match(tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name;

    #[test]
    fn parses_wheel_filenames() {
        let w = WheelFilename::parse(
            "foo_bar-1.0-1abc-cp311.cp312-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        )
        .expect("valid");
        assert_eq!(w.name, "foo_bar");
        assert_eq!(w.version.to_string(), "1.0");
        assert_eq!(w.build.as_deref(), Some("1abc"));
        assert_eq!(w.python_tags, ["cp311", "cp312"]);
        assert_eq!(w.platform_tags.len(), 2);
        for (bad, message) in [
            ("foo-1.0-py3-none-any.zip", "extension must be '.whl'"),
            ("foo-1.0-any.whl", "wrong number of parts"),
            ("foo__x-1.0-py3-none-any.whl", "Invalid project name"),
            ("foo-x.y-py3-none-any.whl", "invalid version"),
            ("foo-1.0-b1-py3-none-any.whl", "Invalid build number"),
            ("foo-1.0-py3<x>-none-any.whl", "invalid python tag 'py3<x>'"),
            ("foo-1.0-py3-no%20ne-any.whl", "invalid ABI tag 'no%20ne'"),
            ("foo-1.0-py3-none-any&x.whl", "invalid platform tag 'any&x'"),
            (
                "foo-1.0-py3..py2-none-any.whl",
                "invalid python tag 'py3..py2'",
            ),
            ("foo-1.0--none-any.whl", "invalid python tag ''"),
            ("foo-1.0-py3-none-an\u{e9}.whl", "invalid platform tag"),
            ("-1.0-py3-none-any.whl", "Invalid project name"),
            // Found by e2e/test_differential.py: packaging refuses a newline in the build tag.
            ("x-1.0-1\n-py3-none-any.whl", "Invalid build number"),
        ] {
            let err = WheelFilename::parse(bad).expect_err(bad);
            assert!(err.contains(message), "{bad}: {err}");
        }
    }

    #[test]
    fn allows_only_known_platforms() {
        for ok in [
            "any",
            "win_amd64",
            "macosx_10_9_x86_64",
            "macosx_11_0_arm64",
            "macosx_26_0_universal2",
            "manylinux_2_28_aarch64",
            "musllinux_1_2_x86_64",
            "manylinux2014_ppc64le",
            "ios_13_0_arm64_iphoneos",
            "android_21_arm64_v8a",
            "pyemscripten_2024_0_wasm32",
        ] {
            assert!(is_allowed_platform_tag(ok), "{ok}");
        }
        for bad in [
            "linux_x86_64",
            "macosx_16_0_arm64",
            "musllinux_1_2_ppc64",
            "cygwin",
            "any2",
        ] {
            assert!(!is_allowed_platform_tag(bad), "{bad}");
        }
    }

    #[test]
    fn checks_filename_characters_and_extension() {
        assert!(check_filename("foo-1.0.tar.gz", PackageType::Sdist).is_ok());
        assert!(check_filename("foo-1.0-py3-none-any.whl", PackageType::BdistWheel).is_ok());
        for (bad, kind) in [
            ("../foo-1.0.tar.gz", PackageType::Sdist),
            ("foo\\1.0.tar.gz", PackageType::Sdist),
            ("foo\n-1.0.tar.gz", PackageType::Sdist),
            ("foo-1.0.exe", PackageType::BdistWheel),
            ("foo-1.0.tar.gz", PackageType::BdistWheel),
            ("foo-1.0-py3-none-any.whl", PackageType::Sdist),
            (".whl", PackageType::BdistWheel),
        ] {
            assert!(check_filename(bad, kind).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_sdist_filenames_like_packaging() {
        let (name, version) = parse_sdist_filename("Foo.Bar-baz-1.0.post1.tar.gz").expect("valid");
        assert_eq!(
            (name.as_str(), version.to_string().as_str()),
            ("foo-bar-baz", "1.0.post1")
        );
        assert!(parse_sdist_filename("foo-1.0.zip").is_ok());
        for (bad, message) in [
            ("foo-1.0.tgz", "extension must be"),
            ("foo.tar.gz", "Invalid sdist filename: "),
            ("-1.0.tar.gz", "empty project name"),
            ("foo-bar.tar.gz", "invalid version"),
        ] {
            let err = parse_sdist_filename(bad).expect_err(bad);
            assert!(err.contains(message), "{bad}: {err}");
        }
    }

    #[test]
    fn pep_625_sdist_names() {
        let v = version::parse("1.0.0").expect("version");
        assert_eq!(
            expected_sdist_filename(&name::normalize("Foo.Bar"), &v),
            "foo_bar-1.0.0.tar.gz"
        );
    }
}
