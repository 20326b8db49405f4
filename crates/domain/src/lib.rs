//! regkeep's domain: pure types and rules, no I/O.
//!
//! Layout:
//! - [`registry_name`]: the `registry` strings operators register (docs/design.md §3.1).
//! - [`ecr_host`]: which hosts are Amazon ECR, and what account/region/partition they name (docs/design.md §3.2).
//! - [`entities`]: accounts, users, registries, images, subscriptions, events as the use-cases see them.
//! - [`ecr_token`]: an ECR token as kept, with the lifecycle's times (docs/design.md §3.4).
//! - [`registry_kind`]: `docker_v2` / `awsecr`, type guessing, and ECR credential modes (docs/design.md §3.2, 3.3).
//! - [`image_reference`]: image references and which registered credential serves an image (docs/design.md §3.5).
//! - [`oci`]: manifests, indexes, descriptors, platforms and digests (OCI image and distribution specs).
//! - [`backoff`]: the one retry schedule (exponential, capped, jittered).
//! - [`account`]: account and user names, types and states (docs/design.md §2).
//! - [`ttl_map`]: the bounded map of expiring values every in-memory cache uses.
//! - [`secret`]: the secret newtype whose `Debug` never shows its value.
//! - [`digest`]: content digests, parsed once.
//! - [`clock`]: timestamps and the injected clock.
//! - [`wire`]: the JSON request and response bodies shared by the server and the CLI client.
//! - [`outbound`]: which addresses regkeep may connect to for a user (docs/design.md §3.7).
//! - [`untrusted_text`]: text from outside made safe to show, store, log and print.

pub mod account;
pub mod api_key;
pub mod backoff;
pub mod clock;
pub mod digest;
pub mod ecr_host;
pub mod ecr_token;
pub mod entities;
pub mod image_reference;
pub mod oci;
pub mod outbound;
pub mod registry_kind;
pub mod registry_name;
pub mod secret;
pub mod ttl_map;
pub mod untrusted_text;
pub mod wire;

pub use account::{AccountName, AccountState, AccountType, UserName};
pub use api_key::{ApiKeyId, ApiKeyToken, Scope, Scopes};
pub use backoff::Backoff;
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use digest::Digest;
pub use ecr_host::{EcrHost, Partition};
pub use ecr_token::EcrToken;
pub use image_reference::{ImageReference, ImageReferenceError};
pub use registry_kind::{EcrCredentialMode, RegistryType};
pub use registry_name::{Host, RegistryName, RegistryNameError};
pub use secret::Secret;
pub use ttl_map::{TtlMap, WhenFull};

/// A boxed future that may cross threads: what a trait object's async method returns (the
/// seams between the engine and its adapters are such traits).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
