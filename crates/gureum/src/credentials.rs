//! How the CLI and the benchmarks authenticate to a Gureum server: `--api-key`, else
//! `GUREUM_API_KEY`, else the bootstrap admin key in the data folder (`--data-dir`,
//! `./gureum-data` by default) when that file is readable — which is the case on the machine
//! that runs `gureum up`.

use crate::Error;
use std::path::PathBuf;

/// The credential arguments commands that call the API share.
#[derive(clap::Args, Clone, Debug)]
pub struct Credentials {
    /// The API key to send (`Authorization: Bearer <key>`).
    #[arg(long, global = true, env = "GUREUM_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Without --api-key: the data folder whose `admin.key` to send.
    #[arg(long = "key-dir", global = true, default_value = crate::DEFAULT_DATA_DIR, env = "GUREUM_DATA_DIR")]
    key_dir: PathBuf,
}

impl Credentials {
    /// The key to send, if any is known.
    pub fn resolve(&self) -> Option<String> {
        if let Some(key) = self
            .api_key
            .as_ref()
            .map(|k| k.trim())
            .filter(|k| !k.is_empty())
        {
            return Some(key.to_owned());
        }
        std::fs::read_to_string(self.key_dir.join(crate::server::ADMIN_KEY_FILE))
            .ok()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
    }

    /// An HTTP client that sends the key with every request (as a sensitive header, which
    /// debug output never shows).
    pub fn client(&self) -> Result<reqwest::Client, Error> {
        client_with(self.resolve().as_deref())
    }
}

/// An HTTP client sending `key`, if any, as `Authorization: Bearer <key>`.
pub fn client_with(key: Option<&str>) -> Result<reqwest::Client, Error> {
    Ok(reqwest::Client::builder()
        .default_headers(headers(key)?)
        .build()?)
}

/// `Authorization: Bearer <key>` (sensitive: debug output never shows it), if there is a key.
pub fn headers(key: Option<&str>) -> Result<reqwest::header::HeaderMap, Error> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = key {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| "the API key holds characters a header cannot carry")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(headers)
}
