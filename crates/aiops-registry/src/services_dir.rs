//! Registrations kept as files: `[registry] services_dir`, one instance per `*.toml` or
//! `*.json` file, registered when the core starts.

use std::path::Path;

use crate::{RegistryError, RegistryResult, ServiceRegistration};

/// Most files read from the directory.
const MAX_FILES: usize = 1024;
/// Largest file read.
const MAX_FILE_BYTES: u64 = 256 * 1024;

/// Reads and validates every registration file in `dir`, in file-name order. Nothing is
/// returned unless every file is good, so a typo never half-applies a directory.
///
/// # Errors
/// [`RegistryError::Invalid`] naming the file and, for syntax errors, the line.
pub fn load_services_dir(dir: &Path) -> RegistryResult<Vec<ServiceRegistration>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|err| {
            RegistryError::Invalid(format!("registry.services_dir {} cannot be read: {err}", dir.display()))
        })?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| matches!(path.extension().and_then(|e| e.to_str()), Some("toml" | "json")))
        .collect();
    files.sort();
    if files.len() > MAX_FILES {
        return Err(RegistryError::Invalid(format!("{}: more than {MAX_FILES} registration files", dir.display())));
    }
    files.iter().map(|file| load_registration_file(file)).collect()
}

/// Reads and validates one registration file (`.json`, or TOML otherwise).
///
/// # Errors
/// [`RegistryError::Invalid`] naming the file and, for syntax errors, the line.
pub fn load_registration_file(file: &Path) -> RegistryResult<ServiceRegistration> {
    let unreadable = |err: std::io::Error| RegistryError::Invalid(format!("{} cannot be read: {err}", file.display()));
    let size = std::fs::metadata(file).map_err(unreadable)?.len();
    if size > MAX_FILE_BYTES {
        return Err(RegistryError::Invalid(format!("{}: larger than {MAX_FILE_BYTES} bytes", file.display())));
    }
    let text = std::fs::read_to_string(file).map_err(unreadable)?;
    let parsed: Result<ServiceRegistration, String> = if file.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|err| err.to_string())
    } else {
        toml::from_str(&text).map_err(|err| err.to_string())
    };
    let registration = parsed.map_err(|err| RegistryError::Invalid(format!("{}: {}", file.display(), err.trim())))?;
    registration.validate().map_err(|err| RegistryError::Invalid(format!("{}: {err}", file.display())))?;
    Ok(registration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_in_order_and_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a-db.toml"),
            "name = \"postgres\"\ninstance_id = \"pg-1\"\naddress = \"http://127.0.0.1:5432\"\n\n[[checks]]\nkind = \"tcp\"\ntarget = \"127.0.0.1:5432\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b-web.json"),
            r#"{"name": "web", "instance_id": "web-1", "address": "http://127.0.0.1:8080", "dependencies": ["postgres"]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let loaded = load_services_dir(dir.path()).unwrap();
        let ids: Vec<&str> = loaded.iter().map(|r| r.instance_id.as_str()).collect();
        assert_eq!(ids, ["pg-1", "web-1"]);

        std::fs::write(
            dir.path().join("c-bad.toml"),
            "name = \"web\"\ninstance_id = \"x\"\naddress = \"http://h:1\"\n[[checks]]\nkind = \"smtp\"\n",
        )
        .unwrap();
        let err = load_services_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("c-bad.toml") && err.contains("line 5") && err.contains("smtp"), "{err}");

        std::fs::write(dir.path().join("c-bad.toml"), "name = \"web\"\ninstance_id = \"x\"\naddress = \"nope\"\n")
            .unwrap();
        let err = load_services_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("c-bad.toml") && err.contains("address"), "{err}");
    }
}
