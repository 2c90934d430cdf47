//! Form errors as pages show them: a summary at the top of the form whose entries link to
//! their fields, and the same message beside each field.

use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct FormErrors {
    /// (field id, message), in the order of the form.
    pub list: Vec<FieldError>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FormErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.list.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn one(field: &str, message: impl Into<String>) -> FormErrors {
        let mut errors = FormErrors::default();
        errors.add(field, message);
        errors
    }
}

/// Trims a text field and refuses it when it is longer than `max` characters.
pub fn text(errors: &mut FormErrors, field: &str, label: &str, value: &str, max: usize) -> String {
    let value = value.trim();
    if value.chars().count() > max {
        errors.add(field, format!("{label} must be at most {max} characters."));
    }
    value.to_owned()
}

crate::site::template_value!(FormErrors);

/// A domain message as a sentence for a page: capitalised, with a full stop.
pub fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut text: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}
