//! Parse errors shared by the event, GUID, number and filter readers.

use thiserror::Error;

/// Why a piece of VSCP text could not be read. Every variant maps to the protocol's
/// "Parse error, invalid format." (code 8) except where a caller says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// An event string had fewer than the 7 mandatory comma fields.
    #[error("expected at least {min} fields, got {got}")]
    TooFewFields { min: usize, got: usize },
    /// More than [`crate::MAX_DATA`] data bytes.
    #[error("{got} data bytes, at most {max} allowed")]
    TooMuchData { got: usize, max: usize },
    /// A number field that is not decimal, `0x` hex, `0o` octal or `0b` binary.
    #[error("field `{field}`: invalid number {text:?}")]
    BadNumber { field: &'static str, text: String },
    /// A GUID that is not up to 16 colon-separated hex bytes.
    #[error("invalid GUID {0:?}")]
    BadGuid(String),
    /// A date/time that is present but cannot be read.
    #[error("invalid date/time {0:?}")]
    BadDateTime(String),
    /// A JSON document or member of the wrong shape.
    #[error("invalid JSON: {0}")]
    BadJson(String),
}
