//! `regkeep account ...` and `regkeep user ...`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use regkeep_domain::wire::{
    AccessCredential, Account, AccountCreationRequest, AccountStatus, CredentialSummary, User,
    UserCreationRequest,
};
use regkeep_domain::Secret;
use reqwest::Method;

use super::client::{segment, Client};
use super::{output, read_stdin_secret, GlobalArgs};

#[derive(Subcommand, Debug)]
pub enum AccountCommand {
    /// Create an account. Example: `regkeep account add team-a --email ops@example.com`
    Add {
        /// The account's name: 1 to 64 of letters, digits and `._@-`, starting with a letter or
        /// digit.
        name: String,
        /// A contact address for the account (shown in `account get`).
        #[arg(long, value_name = "ADDRESS")]
        email: Option<String>,
    },
    /// List accounts.
    List,
    /// Show one account. Example: `regkeep account get team-a`
    Get {
        /// The account's name.
        name: String,
    },
    /// Show the account and user you are logged in as.
    Whoami,
    /// Disable an account: its users can no longer log in. Example: `regkeep account disable team-a`
    Disable {
        /// The account's name.
        name: String,
    },
    /// Enable a disabled account.
    Enable {
        /// The account's name.
        name: String,
    },
    /// Delete a disabled account with its users and registries. Example: `regkeep account del team-a`
    Del {
        /// The account's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user to an account. Example: `regkeep user add alice --account team-a --password-stdin < pw`
    Add {
        /// The new user's login name.
        username: String,
        /// The password; prefer --password-stdin.
        password: Option<String>,
        #[command(flatten)]
        target: UserTarget,
    },
    /// List an account's users. Example: `regkeep user list --account team-a`
    List {
        #[command(flatten)]
        target: UserTarget,
    },
    /// Delete a user. Example: `regkeep user del alice --account team-a`
    Del {
        /// The user to delete.
        username: String,
        #[command(flatten)]
        target: UserTarget,
    },
    /// Set a user's password. Example: `regkeep user setpassword alice --account team-a --password-stdin < pw`
    Setpassword {
        /// The user whose password is set.
        username: String,
        /// The new password; prefer --password-stdin.
        password: Option<String>,
        #[command(flatten)]
        target: UserTarget,
    },
}

#[derive(Args, Debug)]
pub struct UserTarget {
    /// The account the user belongs to (default: your own).
    #[arg(long)]
    account: Option<String>,
    /// Read the password from standard input (first line).
    #[arg(long)]
    password_stdin: bool,
}

pub async fn run_account(
    client: &Client,
    global: &GlobalArgs,
    command: AccountCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        AccountCommand::Add { name, email } => {
            let body = AccountCreationRequest { name, email };
            output::finish(
                client
                    .call::<Account, _>(Method::POST, "/accounts", Some(&body))
                    .await?,
                global.json,
                print_accounts_one,
            )
        }
        AccountCommand::List => output::finish(
            client
                .call::<Vec<Account>, ()>(Method::GET, "/accounts", None)
                .await?,
            global.json,
            |a: &Vec<Account>| print_accounts(a),
        ),
        AccountCommand::Get { name } => {
            let path = format!("/accounts/{}", segment(&name));
            output::finish(
                client.call::<Account, ()>(Method::GET, &path, None).await?,
                global.json,
                print_accounts_one,
            )
        }
        AccountCommand::Whoami => {
            let account = match client
                .call::<Account, ()>(Method::GET, "/account", None)
                .await?
            {
                Ok(a) => a,
                Err(refusal) => return Ok(refusal.report()),
            };
            let user = match client.call::<User, ()>(Method::GET, "/user", None).await? {
                Ok(u) => u,
                Err(refusal) => return Ok(refusal.report()),
            };
            if global.json {
                output::json(&serde_json::json!({"account": account, "user": user}))?;
            } else {
                output::fields(&[
                    ("Username:", user.username.clone()),
                    ("AccountName:", account.name.clone()),
                    ("AccountEmail:", account.email.clone().unwrap_or_default()),
                    ("AccountType:", account.account_type.clone()),
                    ("AccountState:", account.state.clone()),
                ])?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AccountCommand::Disable { name } => set_state(client, global, &name, "disabled").await,
        AccountCommand::Enable { name } => set_state(client, global, &name, "enabled").await,
        AccountCommand::Del { name } => {
            let path = format!("/accounts/{}", segment(&name));
            let answer = client
                .call::<Account, ()>(Method::DELETE, &path, None)
                .await?;
            output::finish(answer, global.json, |account: &Account| {
                output::line(&format!(
                    "Account {name} is {}: its users, registries and records are removed in the background (`regkeep account get {name}` answers 404 once done)",
                    account.state
                ))
            })
        }
    }
}

async fn set_state(
    client: &Client,
    global: &GlobalArgs,
    name: &str,
    state: &str,
) -> anyhow::Result<ExitCode> {
    let path = format!("/accounts/{}/state", segment(name));
    let body = AccountStatus {
        state: state.to_owned(),
    };
    let answer = client
        .call::<AccountStatus, _>(Method::PUT, &path, Some(&body))
        .await?;
    output::finish(answer, global.json, |s: &AccountStatus| {
        output::line(&format!("Account {name} is now {}", s.state))
    })
}

pub async fn run_user(
    client: &Client,
    global: &GlobalArgs,
    command: UserCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Add {
            username,
            password,
            target,
        } => {
            let account = target_account(client, &target).await?;
            let body = UserCreationRequest {
                username,
                password: password_of(password, target.password_stdin)?,
            };
            let path = format!("/accounts/{}/users", segment(&account));
            output::finish(
                client
                    .call::<User, _>(Method::POST, &path, Some(&body))
                    .await?,
                global.json,
                |u: &User| print_users(std::slice::from_ref(u)),
            )
        }
        UserCommand::List { target } => {
            let account = target_account(client, &target).await?;
            let path = format!("/accounts/{}/users", segment(&account));
            output::finish(
                client
                    .call::<Vec<User>, ()>(Method::GET, &path, None)
                    .await?,
                global.json,
                |u: &Vec<User>| print_users(u),
            )
        }
        UserCommand::Del { username, target } => {
            let account = target_account(client, &target).await?;
            let path = format!(
                "/accounts/{}/users/{}",
                segment(&account),
                segment(&username)
            );
            let answer = client
                .call::<serde_json::Value, ()>(Method::DELETE, &path, None)
                .await?;
            output::finish(answer, global.json, |_| {
                output::line(&format!("Deleted user {username}"))
            })
        }
        UserCommand::Setpassword {
            username,
            password,
            target,
        } => {
            let account = target_account(client, &target).await?;
            let body = AccessCredential {
                credential_type: "password".into(),
                value: password_of(password, target.password_stdin)?,
            };
            let path = format!(
                "/accounts/{}/users/{}/credentials",
                segment(&account),
                segment(&username)
            );
            let answer = client
                .call::<CredentialSummary, _>(Method::POST, &path, Some(&body))
                .await?;
            output::finish(answer, global.json, |_| {
                output::line(&format!("Password of {username} updated"))
            })
        }
    }
}

/// The `--account` given, or the caller's own.
async fn target_account(client: &Client, target: &UserTarget) -> anyhow::Result<String> {
    if let Some(account) = &target.account {
        return Ok(account.clone());
    }
    match client
        .call::<Account, ()>(Method::GET, "/account", None)
        .await?
    {
        Ok(account) => Ok(account.name),
        Err(refusal) => {
            refusal.report();
            anyhow::bail!("cannot tell which account you are in: give --account")
        }
    }
}

fn password_of(arg: Option<String>, stdin: bool) -> anyhow::Result<Secret> {
    match (arg, stdin) {
        (Some(_), true) => anyhow::bail!(
            "give the password either as an argument or with --password-stdin, not both"
        ),
        (Some(p), false) => Ok(Secret::new(p)),
        (None, true) => read_stdin_secret("password"),
        (None, false) => anyhow::bail!(
            "no password: give it as an argument, or better, pipe it with --password-stdin"
        ),
    }
}

/// Prints a success (JSON or the human form) or reports a refusal.
fn print_accounts_one(account: &Account) -> anyhow::Result<()> {
    print_accounts(std::slice::from_ref(account))
}

fn print_accounts(accounts: &[Account]) -> anyhow::Result<()> {
    let rows = accounts
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.email.clone().unwrap_or_default(),
                a.account_type.clone(),
                a.state.clone(),
                a.created_at.to_string(),
            ]
        })
        .collect();
    output::table(&["Name", "Email", "Type", "State", "Created"], rows)
}

fn print_users(users: &[User]) -> anyhow::Result<()> {
    if users.is_empty() {
        return output::line("No users in this account: add one with `regkeep user add`");
    }
    let rows = users
        .iter()
        .map(|u| {
            vec![
                u.username.clone(),
                u.user_type.clone(),
                u.source.clone().unwrap_or_default(),
                u.created_at.to_string(),
            ]
        })
        .collect();
    output::table(&["Name", "Type", "Source", "Created"], rows)
}
