//! The bounded set of reasons a record can be rejected for (dead-letter codes).

use std::fmt;

/// Why a record was not processed. The set is closed so it can label metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The bytes are not valid UTF-8.
    InvalidUtf8,
    /// Not syntactically valid JSON (or a duplicated key).
    InvalidJson,
    /// Valid JSON, but not an object.
    NotObject,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type (string vs number, null, float ts, ...).
    WrongType,
    /// A field has the right type but an impossible value (empty id, negative ts, bad address).
    InvalidValue,
    /// `type` is not one of the six contract types.
    UnknownType,
    /// `action` is not valid for the event's type.
    UnknownAction,
    /// A value (or the whole record) is over its contract limit.
    TooLong,
    /// `v` is present and is not 1.
    UnsupportedVersion,
    /// Older than the watermark minus the late-grace bound (set by the runtime, not the decoder).
    Late,
}

impl Reason {
    /// Every reason, in label order: the complete label set of the dead-letter metric.
    pub const ALL: [Reason; 11] = [
        Reason::InvalidUtf8,
        Reason::InvalidJson,
        Reason::NotObject,
        Reason::MissingField,
        Reason::WrongType,
        Reason::InvalidValue,
        Reason::UnknownType,
        Reason::UnknownAction,
        Reason::TooLong,
        Reason::UnsupportedVersion,
        Reason::Late,
    ];

    /// The stable snake_case code written to dead letters and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::InvalidJson => "invalid_json",
            Reason::NotObject => "not_object",
            Reason::MissingField => "missing_field",
            Reason::WrongType => "wrong_type",
            Reason::InvalidValue => "invalid_value",
            Reason::UnknownType => "unknown_type",
            Reason::UnknownAction => "unknown_action",
            Reason::TooLong => "too_long",
            Reason::UnsupportedVersion => "unsupported_version",
            Reason::Late => "late",
        }
    }

    /// Position of this reason in [`Reason::ALL`] (for dense counters).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
