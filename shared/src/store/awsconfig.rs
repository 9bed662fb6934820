//! The AWS shared `config` and `credentials` files (`~/.aws/config`, `~/.aws/credentials`), read
//! as the AWS SDKs and the AWS CLI read them, for what `object_store` does not: it takes only
//! environment variables.
//!
//! What is read (the AWS SDKs and Tools reference guide, "Shared config and credentials files"
//! and "Precedence of settings", docs.aws.amazon.com/sdkref/latest/guide/file-format.html and
//! settings-reference.html#precedenceOfSettings):
//!
//! - The profile: `AWS_PROFILE`, else `default`. In the config file it is the section
//!   `[profile NAME]` (`[default]` for `default`); in the credentials file `[NAME]`.
//! - The files: `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`) and
//!   `AWS_CONFIG_FILE` (default `~/.aws/config`).
//! - Precedence, setting by setting: environment variables, then the credentials file, then the
//!   config file. Credentials are taken as a set: `AWS_ACCESS_KEY_ID` with
//!   `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) from the environment, else the profile's
//!   `aws_access_key_id`, `aws_secret_access_key` (and `aws_session_token`): a token is never
//!   paired with a key from another place.
//! - `region` (after `AWS_REGION`, `AWS_DEFAULT_REGION`), `endpoint_url` (after
//!   `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`; neither when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`
//!   or the profile's `ignore_configured_endpoint_urls` is true), a web identity
//!   (`role_arn` with `web_identity_token_file`, as `object_store` does from the environment).
//!
//! What is not (a profile that needs it is refused with one line naming it and what to use):
//! `credential_process`, IAM Identity Center (`sso_session`, `sso_start_url`, …), assuming a role
//! from another profile (`role_arn` with `source_profile` or `credential_source`), and the
//! `[services …]` sections. Every file is read bounded ([`crate::limits::MAX_AWS_CONFIG`]); no
//! value read here ever appears in an error or a message (a [`Secret`] prints as `***`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A value never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Static credentials and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key ID.
    pub key_id: Secret,
    /// The secret access key.
    pub secret: Secret,
    /// The session token, from the same place as the key.
    pub token: Option<Secret>,
    /// Where they came from, for `-v` (`the environment`, `profile prod in /root/.aws/credentials`).
    pub source: String,
}

/// A web identity to assume a role with (EKS IRSA shape), from a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebIdentity {
    /// The role.
    pub role_arn: String,
    /// The token file.
    pub token_file: String,
    /// The session name, when the profile gives one.
    pub session_name: Option<String>,
}

/// What the environment and the shared files say, setting by setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Static credentials; `None` leaves them to `object_store`'s own chain (web identity from
    /// the environment, container and instance credentials).
    pub credentials: Option<Credentials>,
    /// A profile's web identity (when no static credentials were found).
    pub web_identity: Option<WebIdentity>,
    /// The region and where it came from.
    pub region: Option<(String, String)>,
    /// The endpoint URL and where it came from.
    pub endpoint: Option<(String, String)>,
    /// The profile in effect and whether it was found in a file.
    pub profile: String,
}

/// One parsed file: profile name → key → value (keys lower-cased).
type Profiles = BTreeMap<String, BTreeMap<String, String>>;

/// Parses a shared config (`config = true`: sections `[default]`, `[profile NAME]`; other kinds
/// such as `[sso-session X]` and `[services X]` are skipped) or credentials file (sections
/// `[NAME]`). Comment lines start with `#` or `;`; indented lines under a key with no value are
/// its sub-settings (`s3 =` then `  max_concurrent_requests = 10`), skipped. A profile given
/// twice is merged, the later value winning.
pub fn parse(text: &str, config: bool) -> Profiles {
    let mut out = Profiles::new();
    let mut current: Option<String> = None;
    let mut in_nested = false;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if line.starts_with([' ', '\t']) && in_nested {
            continue;
        }
        if let Some(inner) = trimmed.strip_prefix('[') {
            in_nested = false;
            let Some(inner) = inner.split(']').next() else { continue };
            let name = inner.trim();
            current = if config {
                if name == "default" {
                    Some("default".to_string())
                } else {
                    name.strip_prefix("profile").filter(|r| r.starts_with([' ', '\t'])).map(|r| r.trim().to_string())
                }
            } else {
                Some(name.to_string())
            };
            if let Some(p) = &current {
                out.entry(p.clone()).or_default();
            }
            continue;
        }
        let Some(p) = &current else { continue };
        let Some((k, v)) = trimmed.split_once('=') else { continue };
        let key = k.trim().to_ascii_lowercase();
        let mut value = v.trim();
        // An inline comment: `#` or `;` after white space.
        if let Some(i) = value.find(" #").or_else(|| value.find(" ;")).or_else(|| value.find("\t#")) {
            value = value[..i].trim_end();
        }
        in_nested = value.is_empty();
        if !in_nested {
            out.entry(p.clone()).or_default().insert(key, value.to_string());
        }
    }
    out
}

/// The environment, as a function (tests give their own).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process's environment (an empty variable counts as unset, as the SDKs do).
pub fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

fn expand_home(p: &str, env: Env) -> PathBuf {
    match (p.strip_prefix("~/"), env("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// The two files' paths: credentials, config.
pub fn paths(env: Env) -> (PathBuf, PathBuf) {
    let home = env("HOME").unwrap_or_default();
    let default = |f: &str| Path::new(&home).join(".aws").join(f);
    (
        env("AWS_SHARED_CREDENTIALS_FILE").map(|p| expand_home(&p, env)).unwrap_or_else(|| default("credentials")),
        env("AWS_CONFIG_FILE").map(|p| expand_home(&p, env)).unwrap_or_else(|| default("config")),
    )
}

/// Reads a shared file bounded; a file that does not exist is empty, as for the SDKs.
fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => crate::base::fsio::read_bounded_string(path, "AWS shared config file", crate::limits::MAX_AWS_CONFIG)
            .map(Some),
    }
}

/// Resolves credentials, region and endpoint from `env` and the shared files.
/// Errors name `url` (the bucket it was for), the profile and the file, never a value.
pub fn resolve(env: Env, url: &str) -> Result<Resolved> {
    let (cred_path, conf_path) = paths(env);
    let creds_text = read(&cred_path)?;
    let conf_text = read(&conf_path)?;
    resolve_from(env, (&cred_path, creds_text.as_deref()), (&conf_path, conf_text.as_deref()))
        .map_err(|reason| Error::ObjectStore { url: url.to_string(), reason })
}

/// [`resolve`] of files already read (`None`: the file does not exist); the error is its reason.
pub fn resolve_from(
    env: Env,
    creds: (&Path, Option<&str>),
    conf: (&Path, Option<&str>),
) -> std::result::Result<Resolved, String> {
    let explicit = env("AWS_PROFILE");
    let profile = explicit.clone().unwrap_or_else(|| "default".to_string());
    let cred_file = creds.1.map(|t| parse(t, false)).unwrap_or_default();
    let conf_file = conf.1.map(|t| parse(t, true)).unwrap_or_default();
    let in_creds = cred_file.get(&profile);
    let in_conf = conf_file.get(&profile);
    if explicit.is_some() && in_creds.is_none() && in_conf.is_none() {
        return Err(format!(
            "AWS_PROFILE={profile}: no such profile in {} ([{profile}]) or {} ([profile {profile}]): fix AWS_PROFILE, or unset it to use the default profile",
            creds.0.display(),
            conf.0.display()
        ));
    }
    // Setting by setting: the credentials file, then the config file.
    let get = |k: &str| -> Option<(String, &Path)> {
        in_creds
            .and_then(|p| p.get(k))
            .map(|v| (v.clone(), creds.0))
            .or_else(|| in_conf.and_then(|p| p.get(k)).map(|v| (v.clone(), conf.0)))
            .filter(|(v, _)| !v.is_empty())
    };
    let from = |path: &Path| format!("profile {profile} in {}", path.display());
    let mut out = Resolved { profile: profile.clone(), ..Default::default() };

    out.region = env("AWS_REGION")
        .map(|r| (r, "AWS_REGION".to_string()))
        .or_else(|| env("AWS_DEFAULT_REGION").map(|r| (r, "AWS_DEFAULT_REGION".to_string())))
        .or_else(|| get("region").map(|(r, p)| (r, from(p))));

    let truthy = |v: Option<String>| v.is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let ignore_files = truthy(env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"))
        || truthy(get("ignore_configured_endpoint_urls").map(|(v, _)| v));
    out.endpoint = env("AWS_ENDPOINT_URL_S3")
        .map(|e| (e, "AWS_ENDPOINT_URL_S3".to_string()))
        .or_else(|| env("AWS_ENDPOINT_URL").map(|e| (e, "AWS_ENDPOINT_URL".to_string())))
        .or_else(|| env("AWS_ENDPOINT").map(|e| (e, "AWS_ENDPOINT".to_string())))
        .or_else(|| if ignore_files { None } else { get("endpoint_url").map(|(e, p)| (e, from(p))) });

    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        out.credentials = Some(Credentials {
            key_id: Secret(id),
            secret: Secret(secret),
            token: env("AWS_SESSION_TOKEN").map(Secret),
            source: "the environment (AWS_ACCESS_KEY_ID)".into(),
        });
        return Ok(out);
    }
    let refuse = |what: &str, instead: &str| {
        Err(format!("AWS profile {profile} uses {what}, which kubectl-etcd cannot use: {instead}"))
    };
    if get("role_arn").is_some() && (get("source_profile").is_some() || get("credential_source").is_some()) {
        return refuse(
            "role_arn with source_profile/credential_source (assume a role)",
            "export the role's temporary keys (aws sts assume-role, or `aws configure export-credentials --format env`) as AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN",
        );
    }
    if let (Some((role, _)), Some((file, _))) = (get("role_arn"), get("web_identity_token_file")) {
        out.web_identity = Some(WebIdentity {
            role_arn: role,
            token_file: expand_home(&file, env).display().to_string(),
            session_name: get("role_session_name").map(|(s, _)| s),
        });
        return Ok(out);
    }
    if get("role_arn").is_some() {
        return refuse(
            "role_arn without source_profile or web_identity_token_file",
            "give the profile static keys, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        );
    }
    if ["sso_session", "sso_start_url", "sso_account_id", "sso_role_name"].iter().any(|k| get(k).is_some()) {
        return refuse(
            "IAM Identity Center (sso_*)",
            "run `aws sso login`, then `eval \"$(aws configure export-credentials --profile NAME --format env)\"` to export its temporary keys",
        );
    }
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some((id, p)), Some((secret, _))) => {
            out.credentials = Some(Credentials {
                key_id: Secret(id),
                secret: Secret(secret),
                token: get("aws_session_token").map(|(t, _)| Secret(t)),
                source: from(p),
            });
            Ok(out)
        }
        (Some((_, p)), None) => Err(format!("{} has aws_access_key_id but no aws_secret_access_key: add it", from(p))),
        (None, Some((_, p))) => Err(format!("{} has aws_secret_access_key but no aws_access_key_id: add it", from(p))),
        (None, None) if get("credential_process").is_some() => refuse(
            "credential_process",
            "run the process yourself and export its AccessKeyId, SecretAccessKey and SessionToken as AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN",
        ),
        (None, None) => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| m.get(k).cloned().filter(|v| !v.is_empty())
    }

    const CREDS: &str = "\
# the credentials file: [NAME]
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = default-secret

[prod]
aws_access_key_id=AKIAPROD
aws_secret_access_key=prod-secret ; a comment
aws_session_token = prod-token
";
    const CONF: &str = "\
[default]
region = eu-west-1

[profile prod]
region = eu-central-1
endpoint_url = https://minio.example:9000
s3 =
  max_concurrent_requests = 10
  endpoint_url = https://nested.example
aws_access_key_id = AKIAFROMCONFIG

[prod]
region = not-a-profile-section-in-config

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start

[profile only-config]
aws_access_key_id = AKIACONF
aws_secret_access_key = conf-secret

[profile sso]
sso_session = corp
sso_account_id = 1

[profile proc]
credential_process = /bin/get-creds

[profile assume]
role_arn = arn:aws:iam::1:role/r
source_profile = default

[profile irsa]
role_arn = arn:aws:iam::1:role/r
web_identity_token_file = /var/run/token
";

    fn resolve(pairs: &[(&str, &str)]) -> std::result::Result<Resolved, String> {
        let env = env_of(pairs);
        resolve_from(&env, (Path::new("/h/.aws/credentials"), Some(CREDS)), (Path::new("/h/.aws/config"), Some(CONF)))
    }

    #[test]
    fn sections_of_each_file() {
        let c = parse(CONF, true);
        assert_eq!(c.keys().collect::<Vec<_>>(), ["assume", "default", "irsa", "only-config", "proc", "prod", "sso"]);
        assert_eq!(c["prod"]["region"], "eu-central-1", "[prod] in the config file is no profile");
        assert_eq!(c["prod"]["endpoint_url"], "https://minio.example:9000", "nested s3 settings skipped");
        let k = parse(CREDS, false);
        assert_eq!(k["prod"]["aws_secret_access_key"], "prod-secret");
    }

    #[test]
    fn default_profile_from_the_files() {
        let r = resolve(&[]).unwrap();
        let c = r.credentials.unwrap();
        assert_eq!((c.key_id.0.as_str(), c.secret.0.as_str(), c.token), ("AKIADEFAULT", "default-secret", None));
        assert_eq!(c.source, "profile default in /h/.aws/credentials");
        assert_eq!(r.region, Some(("eu-west-1".into(), "profile default in /h/.aws/config".into())));
        assert_eq!(r.endpoint, None);
    }

    #[test]
    fn named_profile_credentials_file_before_config_file() {
        let r = resolve(&[("AWS_PROFILE", "prod")]).unwrap();
        let c = r.credentials.unwrap();
        assert_eq!(c.key_id.0, "AKIAPROD", "the credentials file wins over the config file");
        assert_eq!(c.token, Some(Secret("prod-token".into())));
        assert_eq!(r.region.unwrap().0, "eu-central-1");
        assert_eq!(r.endpoint.unwrap().0, "https://minio.example:9000");
        let r = resolve(&[("AWS_PROFILE", "only-config")]).unwrap();
        assert_eq!(r.credentials.unwrap().source, "profile only-config in /h/.aws/config");
    }

    #[test]
    fn environment_wins_setting_by_setting() {
        let r = resolve(&[
            ("AWS_PROFILE", "prod"),
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
            ("AWS_REGION", "us-west-2"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ])
        .unwrap();
        let c = r.credentials.unwrap();
        assert_eq!((c.key_id.0.as_str(), c.token), ("AKIAENV", None), "never the profile's token with env keys");
        assert_eq!(r.region.unwrap(), ("us-west-2".into(), "AWS_REGION".into()));
        assert_eq!(r.endpoint.unwrap().1, "AWS_ENDPOINT_URL");
        // A key ID alone in the environment is no credential set: the profile's are taken whole.
        let r = resolve(&[("AWS_PROFILE", "prod"), ("AWS_ACCESS_KEY_ID", "AKIAENV")]).unwrap();
        assert_eq!(r.credentials.unwrap().key_id.0, "AKIAPROD");
        let r = resolve(&[("AWS_PROFILE", "prod"), ("AWS_DEFAULT_REGION", "ap-south-1")]).unwrap();
        assert_eq!(r.region.unwrap().0, "ap-south-1");
        let r = resolve(&[("AWS_PROFILE", "prod"), ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")]).unwrap();
        assert_eq!(r.endpoint, None);
    }

    #[test]
    fn unusable_profiles_are_refused_by_name_without_a_secret() {
        let e = resolve(&[("AWS_PROFILE", "nope")]).unwrap_err();
        assert!(e.contains("AWS_PROFILE=nope: no such profile") && e.contains("/h/.aws/config"), "{e}");
        for (p, what) in [("sso", "sso_"), ("proc", "credential_process"), ("assume", "source_profile")] {
            let e = resolve(&[("AWS_PROFILE", p)]).unwrap_err();
            assert!(e.contains(&format!("AWS profile {p} uses")) && e.contains(what), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        // With keys in the environment the profile's credential source does not matter.
        let r = resolve(&[("AWS_PROFILE", "proc"), ("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "B")]);
        assert!(r.unwrap().credentials.is_some());
        // No default profile anywhere and no AWS_PROFILE: nothing from the files, no error.
        let env = env_of(&[]);
        let r = resolve_from(&env, (Path::new("/x/c"), None), (Path::new("/x/f"), None)).unwrap();
        assert_eq!((r.credentials, r.region), (None, None));
    }

    #[test]
    fn web_identity_from_a_profile() {
        let r = resolve(&[("AWS_PROFILE", "irsa")]).unwrap();
        assert_eq!(r.credentials, None);
        let w = r.web_identity.unwrap();
        assert_eq!((w.role_arn.as_str(), w.token_file.as_str()), ("arn:aws:iam::1:role/r", "/var/run/token"));
    }

    #[test]
    fn files_from_the_environment_and_secrets_not_printed() {
        let env = env_of(&[("HOME", "/home/u"), ("AWS_CONFIG_FILE", "~/cfg")]);
        assert_eq!(paths(&env), (PathBuf::from("/home/u/.aws/credentials"), PathBuf::from("/home/u/cfg")));
        let r = resolve(&[("AWS_PROFILE", "prod")]).unwrap();
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("prod-secret") && !shown.contains("AKIAPROD") && !shown.contains("prod-token"),
            "{shown}"
        );
    }
}
