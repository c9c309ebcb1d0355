//! The two document formats that ship: [`yaml`] (serde-saphyr) and [`json`]
//! (serde_json). The file engine stores the state in either; the sidecar files and the
//! sqlite backend use them for their own formats.

pub(crate) mod json;
pub(crate) mod yaml;
