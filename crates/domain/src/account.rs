//! Accounts and users (docs/design.md §2): names, types and states.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The account and user created at first start.
pub const ADMIN: &str = "admin";

/// An account name: 1 to 64 of `A-Z a-z 0-9 . _ @ -`, starting with a letter or digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountName(String);

/// A user name: 1 to 128 of `A-Z a-z 0-9 . _ @ + -`, starting with a letter or digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

/// Why an account or user name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}` is not valid: use 1 to {max} characters from letters, digits and `{extra}`, starting with a letter or digit")]
pub struct NameError {
    what: &'static str,
    value: String,
    max: usize,
    extra: &'static str,
}

fn check(
    what: &'static str,
    value: &str,
    max: usize,
    extra: &'static str,
) -> Result<(), NameError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c));
    if ok {
        Ok(())
    } else {
        let shown: String = value.chars().take(80).collect();
        Err(NameError {
            what,
            value: shown,
            max,
            extra,
        })
    }
}

macro_rules! name_type {
    ($ty:ident, $what:literal, $max:literal, $extra:literal) => {
        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                check($what, s, $max, $extra)?;
                Ok($ty(s.to_owned()))
            }
        }
        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                check($what, &s, $max, $extra)?;
                Ok($ty(s))
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.0)
            }
        }
    };
}

name_type!(AccountName, "account name", 64, "._@-");
name_type!(UserName, "user name", 128, "._@+-");

impl AccountName {
    /// The admin account.
    pub fn admin() -> Self {
        AccountName(ADMIN.to_owned())
    }
}

impl UserName {
    /// The admin user.
    pub fn admin() -> Self {
        UserName(ADMIN.to_owned())
    }
}

/// An account's type: the admin account may act in any account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountType {
    Admin,
    User,
}

impl AccountType {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Admin => "admin",
            AccountType::User => "user",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(AccountType::Admin),
            "user" => Some(AccountType::User),
            _ => None,
        }
    }
}

/// An account's state: users of a disabled account cannot authenticate; only disabled accounts
/// can be deleted (as in Anchore).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountState {
    Enabled,
    Disabled,
    /// Deleted by an admin; its users, registries and records are being removed in the
    /// background (Anchore's state of the same name). Never set through the state API.
    Deleting,
}

impl AccountState {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Enabled => "enabled",
            AccountState::Disabled => "disabled",
            AccountState::Deleting => "deleting",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "enabled" => Some(AccountState::Enabled),
            "disabled" => Some(AccountState::Disabled),
            "deleting" => Some(AccountState::Deleting),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!("team-a".parse::<AccountName>().is_ok());
        assert!("a.b_c@d".parse::<AccountName>().is_ok());
        for bad in ["", "-x", "has space", "ünï", "x/y", &"a".repeat(65)] {
            let err = bad.parse::<AccountName>().unwrap_err();
            assert!(err.to_string().contains("account name"), "{bad}");
        }
        assert!("ops+ci@example.com".parse::<UserName>().is_ok());
        assert!("bad:name".parse::<UserName>().is_err());
    }
}
