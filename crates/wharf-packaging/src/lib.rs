//! The pure rules of Python packaging that an index enforces: project names (PEP 503),
//! versions (PEP 440), distribution filenames (wheels, PEP 625 sdists), core metadata, the
//! inspection of uploaded archives, and the pages of an upstream Simple index. No I/O beyond
//! reading the archive it is given.

pub mod archive;
pub mod filename;
pub mod index_page;
pub mod metadata;
pub mod name;
pub mod version;
