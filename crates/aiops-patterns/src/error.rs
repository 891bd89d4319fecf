//! Errors of the pattern library.

/// Result of pattern operations.
pub type PatternResult<T> = Result<T, PatternError>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    /// A pattern file is malformed; names the file, the line and the reason.
    #[error("{origin}:{line}: {reason}")]
    Invalid {
        /// File name (or `shipped/<name>`).
        origin: String,
        /// 1-based line, 0 when the problem is not tied to one line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A pattern directory could not be read.
    #[error("cannot read pattern files in {dir}")]
    Io {
        /// The directory.
        dir: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
