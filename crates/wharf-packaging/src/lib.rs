//! The pure rules of Python packaging that an index enforces: project names (PEP 503),
//! versions (PEP 440), distribution filenames (wheels, PEP 625 sdists), core metadata, and
//! the inspection of uploaded archives. No I/O beyond reading the archive it is given.

pub mod archive;
pub mod filename;
pub mod metadata;
pub mod name;
pub mod version;
