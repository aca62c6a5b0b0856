//! Reading settings from the environment, with errors that name the
//! variable (the binary's and the repository's examples' configuration).

/// A required environment variable, or a message naming it.
pub fn required(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("missing required environment variable {name}"))
}

/// A comma-separated list from an optional environment variable (empty
/// when unset).
pub fn list(name: &str) -> Vec<String> {
    std::env::var(name).map_or_else(|_| Vec::new(), |value| split_list(&value))
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A comma-separated list from a required environment variable.
pub fn required_list(name: &str) -> Result<Vec<String>, String> {
    let items = split_list(&required(name)?);
    if items.is_empty() {
        return Err(format!("{name} lists no values"));
    }
    Ok(items)
}

/// A whole number from the environment, or `default`.
pub fn number(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(value) => value
            .trim()
            .parse()
            .map_err(|_| format!("{name} must be a whole number, got {value:?}")),
    }
}

/// A `true`/`false` (or `1`/`0`, `yes`/`no`, `on`/`off`) from the environment, or `default`.
pub fn flag(name: &str, default: bool) -> Result<bool, String> {
    match std::env::var(name).map(|v| v.trim().to_ascii_lowercase()) {
        Err(_) => Ok(default),
        Ok(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
        Ok(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
        Ok(v) => Err(format!("{name} must be true or false, got {v:?}")),
    }
}
