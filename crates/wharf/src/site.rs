//! What the whole server shares about itself, below both the domain and the web layer: the
//! site's name, URL encoding, and the glue that lets domain types go into templates. It
//! imports nothing of the crate, so any module may use it without making a cycle.

pub const SITE_NAME: &str = "wharf";

/// Lets serde types go straight into `context!` (minijinja takes them through serde).
macro_rules! template_value {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for minijinja::Value {
            fn from(value: $t) -> minijinja::Value {
                minijinja::Value::from(minijinja::value::Serde(value))
            }
        })*
    };
}
pub(crate) use template_value;

pub fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}
