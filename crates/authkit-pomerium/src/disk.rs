//! The optional on-disk token cache: one file per route in a private
//! per-user directory.
//!
//! Tokens are bearer credentials, so the rules are strict: the directory is
//! created `0700` (and tightened to it when we own it), files are written
//! `0600` through a temp file and a rename (a reader never sees half a token),
//! and a directory or file that is a symlink or belongs to another user is
//! refused outright rather than read or written through.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::token::{Route, Token};

/// Cache files are tiny; anything bigger is not ours.
const MAX_FILE: u64 = 64 * 1024;

#[derive(Clone, Debug)]
pub(crate) struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// `~/.cache/tower-authkit/pomerium` on Linux (honouring
    /// `$XDG_CACHE_HOME`), `~/Library/Caches/...` on macOS,
    /// `%LOCALAPPDATA%\...` on Windows.
    pub(crate) fn default_dir() -> Option<PathBuf> {
        directories::BaseDirs::new().map(|dirs| dirs.cache_dir().join("tower-authkit").join("pomerium"))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The route's cached token, if there is one that is still fresh. Stale
    /// or unreadable files are deleted.
    pub(crate) fn load(&self, route: &Route) -> Result<Option<Token>, String> {
        if !self.check_dir(false)? {
            return Ok(None);
        }
        let path = self.file(route);
        let Some(meta) = self.existing(&path)? else {
            return Ok(None);
        };
        if meta.len() > MAX_FILE {
            return Err(format!("{} is too large to be a token", path.display()));
        }
        let mut raw = String::new();
        open_no_follow(&path)
            .and_then(|mut file| file.read_to_string(&mut raw))
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        match Token::parse(&raw) {
            Some(token) if token.is_fresh(SystemTime::now()) => Ok(Some(token)),
            _ => {
                self.remove(route);
                Ok(None)
            }
        }
    }

    /// Writes the route's token atomically, `0600`.
    pub(crate) fn store(&self, route: &Route, token: &Token) -> Result<(), String> {
        self.check_dir(true)?;
        let path = self.file(route);
        self.existing(&path)?;
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| e.to_string())?;
        let temp = self
            .dir
            .join(format!(".{}.{:016x}.tmp", file_name(route), u64::from_le_bytes(suffix)));
        let written = create_private(&temp).and_then(|mut file| {
            file.write_all(token.as_str().as_bytes())?;
            file.sync_all()
        });
        let renamed = written.and_then(|()| fs::rename(&temp, &path));
        if let Err(e) = renamed {
            let _ = fs::remove_file(&temp);
            return Err(format!("cannot write {}: {e}", path.display()));
        }
        Ok(())
    }

    /// Forgets the route's token (best effort: a leftover file is dropped on
    /// the next load anyway once the server has refused it).
    pub(crate) fn remove(&self, route: &Route) {
        let path = self.file(route);
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a cached pomerium token");
        }
    }

    fn file(&self, route: &Route) -> PathBuf {
        self.dir.join(format!("{}.jwt", file_name(route)))
    }

    /// Checks (and with `create`, makes) the directory. `Ok(false)` when it
    /// does not exist and was not to be created.
    fn check_dir(&self, create: bool) -> Result<bool, String> {
        let dir = &self.dir;
        let meta = match fs::symlink_metadata(dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                fs::symlink_metadata(dir).map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?
            }
            Err(e) => return Err(format!("cannot inspect {}: {e}", dir.display())),
        };
        refuse_unless_ours(dir, &meta, Kind::Dir)?;
        tighten_dir(dir, &meta).map_err(|e| format!("cannot restrict {} to 0700: {e}", dir.display()))?;
        Ok(true)
    }

    /// Metadata of an existing cache file, refusing symlinks and files of
    /// other users.
    fn existing(&self, path: &Path) -> Result<Option<fs::Metadata>, String> {
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
        };
        refuse_unless_ours(path, &meta, Kind::File)?;
        Ok(Some(meta))
    }
}

enum Kind {
    Dir,
    File,
}

/// Symlinks, the wrong kind of entry and other users' entries are refused,
/// never followed or used.
fn refuse_unless_ours(path: &Path, meta: &fs::Metadata, kind: Kind) -> Result<(), String> {
    let refuse = |reason: &str| Err(format!("refusing {}: {reason}", path.display()));
    if meta.file_type().is_symlink() {
        return refuse("it is a symlink");
    }
    match kind {
        Kind::Dir if !meta.is_dir() => return refuse("it is not a directory"),
        Kind::File if !meta.is_file() => return refuse("it is not a regular file"),
        _ => {}
    }
    owned_by_us(meta).or_else(|reason| refuse(&reason))
}

/// The route key with anything outside `[a-z0-9._-]` percent-escaped, so
/// every route maps to one distinct, portable file name.
fn file_name(route: &Route) -> String {
    let mut name = String::new();
    for byte in route.key().bytes() {
        if byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'.' | b'_' | b'-') {
            name.push(byte as char);
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    name
}

#[cfg(unix)]
mod platform {
    use std::fs::{self, DirBuilder, File, OpenOptions};
    use std::io;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
    use std::path::Path;

    pub(super) fn create_private_dir(dir: &Path) -> io::Result<()> {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }

    pub(super) fn tighten_dir(dir: &Path, meta: &fs::Metadata) -> io::Result<()> {
        if meta.mode() & 0o777 != 0o700 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    pub(super) fn create_private(path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(no_follow())
            .open(path)
    }

    pub(super) fn open_no_follow(path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).custom_flags(no_follow()).open(path)
    }

    fn no_follow() -> i32 {
        rustix::fs::OFlags::NOFOLLOW.bits() as i32
    }

    pub(super) fn owned_by_us(meta: &fs::Metadata) -> Result<(), String> {
        owned_by(meta, rustix::process::geteuid().as_raw())
    }

    pub(super) fn owned_by(meta: &fs::Metadata, uid: u32) -> Result<(), String> {
        if meta.uid() == uid {
            Ok(())
        } else {
            Err(format!("it belongs to uid {}, not to this user ({uid})", meta.uid()))
        }
    }
}

#[cfg(not(unix))]
mod platform {
    //! Elsewhere the per-user cache directory's ACLs already keep other users out.
    use std::fs::{self, File, OpenOptions};
    use std::io;
    use std::path::Path;

    pub(super) fn create_private_dir(dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    pub(super) fn tighten_dir(_dir: &Path, _meta: &fs::Metadata) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn create_private(path: &Path) -> io::Result<File> {
        OpenOptions::new().write(true).create_new(true).open(path)
    }

    pub(super) fn open_no_follow(path: &Path) -> io::Result<File> {
        File::open(path)
    }

    pub(super) fn owned_by_us(_meta: &fs::Metadata) -> Result<(), String> {
        Ok(())
    }
}

use platform::{create_private, create_private_dir, open_no_follow, owned_by_us, tighten_dir};

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    use std::time::UNIX_EPOCH;

    use base64::Engine as _;

    use super::*;

    fn route() -> Route {
        Route::new("https", "app.example.com", None).unwrap()
    }

    fn token_expiring_in(secs: i64) -> Token {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = engine.encode(format!(r#"{{"exp":{}}}"#, now + secs));
        Token::parse(&format!("eyJhbGciOiJFUzI1NiJ9.{payload}.sig")).unwrap()
    }

    #[test]
    fn directory_is_0700_and_files_0600() {
        let root = tempfile::tempdir().unwrap();
        let cache = DiskCache::new(root.path().join("a/b/pomerium"));
        let token = token_expiring_in(3600);
        cache.store(&route(), &token).unwrap();

        let dir_mode = fs::metadata(cache.dir()).unwrap().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let file = cache.dir().join("app.example.com_443.jwt");
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        assert_eq!(cache.load(&route()).unwrap(), Some(token));
        let leftovers: Vec<_> = fs::read_dir(cache.dir()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }

    #[test]
    fn a_loose_directory_we_own_is_tightened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("loose");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        DiskCache::new(dir.clone())
            .store(&route(), &token_expiring_in(3600))
            .unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn symlinked_directory_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = root.path().join("link");
        symlink(&real, &link).unwrap();
        let cache = DiskCache::new(link);
        let error = cache.store(&route(), &token_expiring_in(3600)).unwrap_err();
        assert!(error.contains("symlink"), "{error}");
        assert!(cache.load(&route()).unwrap_err().contains("symlink"));
        assert_eq!(
            fs::read_dir(&real).unwrap().count(),
            0,
            "nothing written through the link"
        );
    }

    #[test]
    fn symlinked_token_file_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let cache = DiskCache::new(root.path().join("cache"));
        cache.store(&route(), &token_expiring_in(3600)).unwrap();
        let file = cache.dir().join("app.example.com_443.jwt");
        let elsewhere = root.path().join("elsewhere.jwt");
        fs::rename(&file, &elsewhere).unwrap();
        symlink(&elsewhere, &file).unwrap();

        assert!(cache.load(&route()).unwrap_err().contains("symlink"));
        assert!(
            cache
                .store(&route(), &token_expiring_in(60))
                .unwrap_err()
                .contains("symlink")
        );
        assert!(
            fs::symlink_metadata(&file).unwrap().file_type().is_symlink(),
            "left alone"
        );
    }

    #[test]
    fn files_of_another_user_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let meta = fs::metadata(root.path()).unwrap();
        assert!(platform::owned_by(&meta, meta.uid()).is_ok());
        let error = platform::owned_by(&meta, meta.uid().wrapping_add(1)).unwrap_err();
        assert!(error.contains("belongs to uid"), "{error}");
    }

    #[test]
    fn expired_and_nearly_expired_tokens_are_dropped() {
        let root = tempfile::tempdir().unwrap();
        let cache = DiskCache::new(root.path().join("cache"));
        let file = cache.dir().join("app.example.com_443.jwt");
        for secs in [-600, 0, 59] {
            cache.store(&route(), &token_expiring_in(secs)).unwrap();
            assert_eq!(cache.load(&route()).unwrap(), None, "exp in {secs}s");
            assert!(!file.exists(), "the stale file is deleted");
        }
        cache.store(&route(), &token_expiring_in(120)).unwrap();
        assert!(cache.load(&route()).unwrap().is_some());
    }

    #[test]
    fn a_missing_directory_is_an_empty_cache() {
        let root = tempfile::tempdir().unwrap();
        let cache = DiskCache::new(root.path().join("never-created"));
        assert_eq!(cache.load(&route()).unwrap(), None);
        assert!(!cache.dir().exists(), "reading creates nothing");
    }

    #[test]
    fn routes_map_to_distinct_file_names() {
        let names: Vec<String> = [("https", "[::1]", Some(8443)), ("http", "app.example.com", None)]
            .into_iter()
            .map(|(scheme, host, port)| file_name(&Route::new(scheme, host, port).unwrap()))
            .collect();
        assert_eq!(names, ["%5B%3A%3A1%5D_8443", "http_app.example.com_80"]);
    }
}
