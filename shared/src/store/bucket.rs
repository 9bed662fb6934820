//! What names a snapshot directory in object storage (`s3://BUCKET/PREFIX`, `gs://…`,
//! `az://…`) and the metadata written with each snapshot object: plain data, below both the
//! snapshot directories (`snapdir`) and the store client (`objstore`).

use object_store::{Attribute, AttributeValue, Attributes};
use serde::Serialize;

use crate::error::{Error, Result};

/// The metadata key prefix (`x-amz-meta-kubectl-etcd-…` on S3).
const META: &str = "kubectl-etcd-";

/// The stores a `--dir` URL may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `s3://` (AWS and S3-compatible stores: MinIO, Ceph, …).
    S3,
    /// `gs://`.
    Gcs,
    /// `az://CONTAINER/PREFIX` (account from `AZURE_STORAGE_ACCOUNT_NAME`).
    Azure,
}

/// A bucket and a prefix in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketUrl {
    /// The store.
    pub scheme: Scheme,
    /// The bucket (container).
    pub bucket: String,
    /// The key prefix ("" or ending without '/').
    pub prefix: String,
}

impl BucketUrl {
    /// Parses `s3://BUCKET[/PREFIX]`, `gs://…`, `az://…`; `None` when it is no such URL.
    pub fn parse(s: &str) -> Option<Result<BucketUrl>> {
        let (scheme, rest) = s.split_once("://")?;
        let scheme = match scheme {
            "s3" | "s3a" => Scheme::S3,
            "gs" => Scheme::Gcs,
            "az" | "azure" => Scheme::Azure,
            other => {
                return Some(Err(Error::Usage(format!(
                    "{s}: unknown scheme {other}://; a snapshot directory is a local path, file://PATH, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX"
                ))))
            }
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/').to_string();
        if bucket.is_empty() || bucket.contains(['?', '#', '@']) || prefix.contains("//") {
            return Some(Err(Error::Usage(format!("{s}: not a bucket URL; use {scheme:?}://BUCKET/PREFIX"))));
        }
        Some(Ok(BucketUrl { scheme, bucket: bucket.to_string(), prefix }))
    }

    /// The object key of a snapshot named `name`.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// The URL of a snapshot named `name`.
    pub fn object_url(&self, name: &str) -> String {
        format!("{}/{name}", self.to_string().trim_end_matches('/'))
    }
}

impl std::fmt::Display for BucketUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.scheme {
            Scheme::S3 => "s3",
            Scheme::Gcs => "gs",
            Scheme::Azure => "az",
        };
        if self.prefix.is_empty() {
            write!(f, "{s}://{}", self.bucket)
        } else {
            write!(f, "{s}://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// What is written with each snapshot object, and read back by `ls` without a download.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObjectMeta {
    /// The sha256 trailer (hex) of the uncompressed snapshot.
    pub sha256: String,
    /// The store's revision.
    pub revision: i64,
    /// The cluster's ID (hex).
    pub cluster_id: String,
    /// The member streamed from: ID (hex) and name.
    pub member_id: String,
    /// The member's name.
    pub member_name: String,
    /// That member's etcd version.
    pub etcd_version: String,
    /// `none` or `zstd`.
    pub compression: String,
    /// The uncompressed size (trailer included).
    pub size: u64,
    /// True when this tool verified the snapshot before uploading it: what retention counts.
    pub verified: bool,
}

impl ObjectMeta {
    /// The metadata as `object_store` attributes for a store of `scheme`: names
    /// `kubectl-etcd-…` (`x-amz-meta-kubectl-etcd-sha256`), or on Azure, whose metadata names
    /// must be C# identifiers (a hyphen is refused with `InvalidMetadata`), `kubectl_etcd_…`.
    pub(crate) fn attributes(&self, scheme: Scheme) -> Attributes {
        let mut a = Attributes::new();
        let mut put = |k: &str, v: String| {
            let mut name = format!("{META}{k}");
            if scheme == Scheme::Azure {
                name = name.replace('-', "_");
            }
            a.insert(Attribute::Metadata(name.into()), AttributeValue::from(v));
        };
        put("sha256", self.sha256.clone());
        put("revision", self.revision.to_string());
        put("cluster-id", self.cluster_id.clone());
        put("member-id", self.member_id.clone());
        put("member-name", self.member_name.clone());
        put("etcd-version", self.etcd_version.clone());
        put("compression", self.compression.clone());
        put("size", self.size.to_string());
        if self.verified {
            put("verified", "sha256-trailer".into());
        }
        a.insert(Attribute::ContentType, AttributeValue::from("application/octet-stream"));
        a
    }

    pub(crate) fn from_attributes(a: &Attributes) -> Option<ObjectMeta> {
        let get = |k: &str| -> Option<String> {
            a.iter().find_map(|(key, v)| match key {
                // Either spelling: `-` (S3, GCS) or `_` (Azure).
                Attribute::Metadata(m) if m.replace('_', "-").eq_ignore_ascii_case(&format!("{META}{k}")) => {
                    Some(v.to_string())
                }
                _ => None,
            })
        };
        let sha256 = get("sha256")?;
        Some(ObjectMeta {
            verified: get("verified").as_deref() == Some("sha256-trailer") && sha256.len() == 64,
            sha256,
            revision: get("revision").and_then(|r| r.parse().ok()).unwrap_or(0),
            cluster_id: get("cluster-id").unwrap_or_default(),
            member_id: get("member-id").unwrap_or_default(),
            member_name: get("member-name").unwrap_or_default(),
            etcd_version: get("etcd-version").unwrap_or_default(),
            compression: get("compression").unwrap_or_default(),
            size: get("size").and_then(|r| r.parse().ok()).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_urls_parse() {
        let u = BucketUrl::parse("s3://b/a/p/").unwrap().unwrap();
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("b", "a/p"));
        assert_eq!(u.key("x.db"), "a/p/x.db");
        assert_eq!(u.object_url("x.db"), "s3://b/a/p/x.db");
        assert_eq!(BucketUrl::parse("s3://b").unwrap().unwrap().key("x.db"), "x.db");
        assert!(BucketUrl::parse("/var/backups").is_none());
        assert!(BucketUrl::parse("ftp://b/p").unwrap().is_err());
        assert!(BucketUrl::parse("s3:///p").unwrap().is_err());
        let g = BucketUrl::parse("gs://b/p").unwrap().unwrap();
        assert_eq!((g.scheme, g.to_string()), (Scheme::Gcs, "gs://b/p".to_string()));
        let a = BucketUrl::parse("azure://c/p/q").unwrap().unwrap();
        assert_eq!((a.scheme, a.key("x.db")), (Scheme::Azure, "p/q/x.db".to_string()));
        let m = ObjectMeta { sha256: "a".repeat(64), revision: 7, verified: true, ..Default::default() };
        for scheme in [Scheme::S3, Scheme::Gcs, Scheme::Azure] {
            let a = m.attributes(scheme);
            assert_eq!(ObjectMeta::from_attributes(&a), Some(m.clone()), "{scheme:?}");
            // Azure takes only C# identifiers as metadata names.
            let names: Vec<String> = a
                .iter()
                .filter_map(|(k, _)| match k {
                    Attribute::Metadata(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect();
            assert!(names
                .contains(&"kubectl-etcd-cluster-id".replace('-', if scheme == Scheme::Azure { "_" } else { "-" })));
            if scheme == Scheme::Azure {
                assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')), "{names:?}");
            }
        }
    }
}
