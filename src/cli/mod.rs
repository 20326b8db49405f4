//! Command-line parsing and the commands.
//!
//! Layout: this module (arguments, global options, dispatch), [`client`] (the HTTP client and
//! how answers become exit codes), [`output`] (tables and JSON), [`registry`], [`account`],
//! [`image`], [`watch`] (the client commands), [`pull`] (writing an OCI image layout), [`serve`] (the service).

mod account;
mod apikey;
mod client;
pub use client::Unreachable;
mod image;
mod output;
mod pull;
mod registry;
mod serve;
mod watch;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// The server refused the request: bad input, not found, conflict, forbidden, credentials the
/// registry refused.
pub const EXIT_REFUSED: u8 = 1;
/// A local problem, failed authentication (401), or an error of regkeep's own (500).
pub const EXIT_FAILURE: u8 = 2;
/// Temporary: regkeep or the registry unreachable or too slow, throttled (429), busy (503),
/// its disk full (507). A retry may help.
pub const EXIT_TEMPORARY: u8 = 3;
/// Interrupted (Ctrl-C).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Whether errors are printed as JSON (`--json`): set once from the arguments. A flag rather than
/// a parameter: every command's refusal path reads it, and none can then forget it.
static JSON_ERRORS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn json_errors() -> bool {
    JSON_ERRORS.load(std::sync::atomic::Ordering::Relaxed)
}

/// regkeep keeps authenticated access to private container registries alive.
///
/// `regkeep serve` runs the service; the other commands talk to it over its HTTP API (the
/// same API `anchore-cli registry ...` uses).
#[derive(Parser, Debug)]
#[command(name = "regkeep", version = VERSION, about, long_about = None, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// `regkeep --version`: the release and the git commit it was built from (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("REGKEEP_GIT_COMMIT"),
    ")"
);

const EXAMPLES: &str = "Examples:
  regkeep serve
  export REGKEEP_USER=admin REGKEEP_PASS=...     # or --u admin --p ...
  regkeep registry add registry.example.com:5000 ci-bot --password-stdin < pass.txt
  regkeep registry add 123456789012.dkr.ecr.us-east-1.amazonaws.com AKIA... --password-stdin
  regkeep registry list --json
  regkeep image add registry.example.com:5000/team/app:1.2
  regkeep image pull registry.example.com:5000/team/app:1.2 --output ./app-layout
  regkeep apikey create --scope credentials:read --expires 90d --output node.key
  regkeep auth export --format authjson --registry 123456789012.dkr.ecr.us-east-1.amazonaws.com --api-key-file node.key

Exit codes:
  0    success
  1    refused by regkeep: bad input, not found, conflict, forbidden, credentials the registry refused
  2    a local problem, authentication to regkeep failed (401), or an error of regkeep's own (500)
  3    temporary: regkeep or the registry unreachable or timed out, 429, 503, 507 (a retry may help)
  130  interrupted (Ctrl-C)
With --json, an error answer is printed as its JSON object {message, httpcode, detail} on standard output.";

/// Where `--help` lists the options of every client command, apart from the command's own (serve
/// takes none of them).
const CLIENT_OPTIONS: &str = "Client options";

/// Options every client command takes.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// regkeep's URL, e.g. `http://127.0.0.1:8228` (a trailing `/v1` is fine). Default: env
    /// REGKEEP_URL, then ANCHORE_CLI_URL, then http://127.0.0.1:8228.
    #[arg(long, global = true, help_heading = CLIENT_OPTIONS, value_name = "URL")]
    pub url: Option<String>,
    /// User name. Default: env REGKEEP_USER, then ANCHORE_CLI_USER.
    #[arg(long = "u", visible_alias = "user", global = true, help_heading = CLIENT_OPTIONS, value_name = "USER")]
    pub user: Option<String>,
    /// Password; prefer env REGKEEP_PASS (then ANCHORE_CLI_PASS) so it stays out of the process list.
    #[arg(long = "p", visible_alias = "pass", global = true, help_heading = CLIENT_OPTIONS, value_name = "PASS")]
    pub pass: Option<String>,
    /// Act in another account (admins only), e.g. `--as-account team-a`.
    #[arg(long, global = true, help_heading = CLIENT_OPTIONS, value_name = "ACCOUNT")]
    pub as_account: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true, help_heading = CLIENT_OPTIONS)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the regkeep service (embedded SQLite by default; no config file needed).
    Serve(serve::ServeArgs),
    /// Manage registry credentials.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Manage accounts (admin).
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// Manage the users of an account (admin).
    #[command(subcommand)]
    User(account::UserCommand),
    /// Resolve, record and pull images with the stored credentials.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Watch tags for new digests.
    #[command(subcommand)]
    Subscription(watch::SubscriptionCommand),
    /// Read the event log (watched tags that moved, lookups that failed).
    #[command(subcommand)]
    Event(watch::EventCommand),
    /// Manage API keys: credentials for machines (credential helpers, the kubelet, CI).
    #[command(subcommand)]
    Apikey(apikey::ApikeyCommand),
    /// Hand out registry credentials to files other tools read (needs an API key).
    #[command(subcommand)]
    Auth(apikey::AuthCommand),
    /// Print a shell completion script. Example: `regkeep completions bash >
    /// /etc/bash_completion.d/regkeep` (zsh: into a directory of $fpath as `_regkeep`; fish:
    /// `~/.config/fish/completions/regkeep.fish`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages: `regkeep.1` and one per command (`regkeep-registry.1`, ...) into
    /// DIR, or `regkeep.1` to standard output without DIR. Example: `regkeep man
    /// /usr/local/share/man/man1`
    Man {
        /// Where to write the pages (created when missing).
        dir: Option<std::path::PathBuf>,
    },
}

/// Parses arguments and runs the command.
///
/// # Errors
/// Local failures (bad arguments after parsing, I/O, start-up); server answers become exit
/// codes, not errors.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    JSON_ERRORS.store(cli.global.json, std::sync::atomic::Ordering::Relaxed);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                refuse_client_options(&cli.global)?;
                serve::run(args).await
            }
            Command::Registry(cmd) => {
                registry::run(&client::Client::new(&cli.global)?, &cli.global, cmd).await
            }
            Command::Account(cmd) => {
                account::run_account(&client::Client::new(&cli.global)?, &cli.global, cmd).await
            }
            Command::User(cmd) => {
                account::run_user(&client::Client::new(&cli.global)?, &cli.global, cmd).await
            }
            Command::Image(cmd) => {
                image::run(&client::Client::new(&cli.global)?, &cli.global, cmd).await
            }
            Command::Subscription(cmd) => {
                watch::run_subscription(&client::Client::new(&cli.global)?, &cli.global, cmd).await
            }
            Command::Event(cmd) => {
                watch::run_event(&client::Client::new(&cli.global)?, &cli.global, cmd).await
            }
            Command::Apikey(cmd) => {
                apikey::run_apikey(&client::Client::new(&cli.global)?, &cli.global, cmd).await
            }
            Command::Auth(cmd) => apikey::run_auth(&cli.global, cmd).await,
            Command::Completions { shell } => {
                let mut command = documented_command();
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut command, "regkeep", &mut script);
                write_stdout(&script)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Man { dir } => man_pages(dir.as_deref()),
        }
    })
}

/// The client options' argument IDs (the fields of [`GlobalArgs`]).
const CLIENT_ARGS: [&str; 5] = ["url", "user", "pass", "as_account", "json"];

/// The commands that do not talk to a regkeep server, so take no client options.
const LOCAL_COMMANDS: [&str; 3] = ["serve", "completions", "man"];

/// The argument definitions, with the client options left out of the help (and man pages, and
/// completions) of the commands that do not use them. clap copies a global option into every
/// subcommand and has no per-subcommand opt-out, but it skips a subcommand that already has an
/// argument of that ID: those commands get hidden copies (still parsed, so that
/// [`refuse_client_options`] can say why they do not apply).
pub fn command() -> clap::Command {
    let mut command = <Cli as clap::CommandFactory>::command();
    let hidden: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|arg| CLIENT_ARGS.contains(&arg.get_id().as_str()))
        .map(|arg| arg.clone().hide(true))
        .collect();
    for name in LOCAL_COMMANDS {
        command = command.mut_subcommand(name, |sub| sub.args(hidden.iter().cloned()));
    }
    command
}

/// The definitions completion scripts and man pages are generated from: the client options are
/// given to each client command (and its subcommands) rather than copied everywhere as globals,
/// because the completion generators list hidden options too. Parsing uses [`command`].
fn documented_command() -> clap::Command {
    fn with_options(command: clap::Command, options: &[clap::Arg]) -> clap::Command {
        let names: Vec<String> = command
            .get_subcommands()
            .map(|sub| sub.get_name().to_owned())
            .collect();
        names
            .into_iter()
            .fold(command.args(options.iter().cloned()), |command, name| {
                command.mut_subcommand(name, |sub| with_options(sub, options))
            })
    }
    let command = <Cli as clap::CommandFactory>::command();
    let options: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|arg| CLIENT_ARGS.contains(&arg.get_id().as_str()))
        .map(|arg| arg.clone().global(false))
        .collect();
    let command = command.mut_args(|arg| {
        if CLIENT_ARGS.contains(&arg.get_id().as_str()) {
            arg.global(false)
        } else {
            arg
        }
    });
    let clients: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .filter(|name| !LOCAL_COMMANDS.contains(&name.as_str()))
        .collect();
    clients.into_iter().fold(command, |command, name| {
        command.mut_subcommand(name, |sub| with_options(sub, &options))
    })
}

/// `regkeep serve --url ...` would otherwise be silently ignored (it looks like the address to
/// serve on): refused, naming what serve takes.
fn refuse_client_options(global: &GlobalArgs) -> anyhow::Result<()> {
    let given: Vec<&str> = [
        (global.url.is_some(), "--url"),
        (global.user.is_some(), "--u (--user)"),
        (global.pass.is_some(), "--p (--pass)"),
        (global.as_account.is_some(), "--as-account"),
        (global.json, "--json"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    if given.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "serve takes no client options ({}): they are for the commands that talk to a regkeep server. To choose where serve listens, use --listen ADDR:PORT (or REGKEEP_LISTEN)",
        given.join(", ")
    )
}

/// `regkeep man [DIR]`: the top page to standard output, or every page into DIR.
fn man_pages(dir: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let command = documented_command();
    let Some(dir) = dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        write_stdout(&page)?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create {}: give a directory you can write",
            dir.display()
        )
    })?;
    let mut pages = vec![(String::from("regkeep"), command.clone())];
    for sub in command.get_subcommands() {
        pages.push((format!("regkeep-{}", sub.get_name()), sub.clone()));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        clap_mangen::Man::new(page.display_name(name.clone()))
            .title(name.clone())
            .render(&mut file)?;
        write_stdout(format!("{}\n", path.display()).as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes to standard output; a reader that went away (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Reads a secret from standard input: the first line, without its line ending.
pub(crate) fn read_stdin_secret(what: &str) -> anyhow::Result<regkeep_domain::Secret> {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let value = line.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        anyhow::bail!("--password-stdin was given but standard input held no {what}: pipe it in, e.g. `regkeep ... --password-stdin < file`");
    }
    Ok(regkeep_domain::Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn arguments_are_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
        documented_command().debug_assert();
    }

    /// `--help` describes every argument a person can give (issue 14: `account add`'s NAME had
    /// no description).
    #[test]
    fn every_argument_is_described() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !arg.is_hide_set() && !builtin && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&command(), "regkeep", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }
}
