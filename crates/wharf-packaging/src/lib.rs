//! The pure rules of Python packaging that an index enforces: project names (PEP 503),
//! versions (PEP 440), distribution filenames (wheels, PEP 625 sdists), core metadata, the
//! inspection of uploaded archives, and the pages of an upstream Simple index; and the other
//! pure readers of what clients send or upload: Simple API content negotiation (PEP 691),
//! installers' user agents, the README renderer, and the upload form. No I/O beyond reading
//! the archive it is given and the upload form's temporary file; every one of them is fuzzed
//! (`fuzz/`).

pub mod archive;
pub mod filename;
pub mod index_page;
pub mod metadata;
pub mod name;
pub mod negotiate;
pub mod readme;
pub mod upload_form;
pub mod user_agent;
pub mod version;
