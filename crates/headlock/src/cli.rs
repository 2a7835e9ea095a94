//! The command line (clap derive). Every flag of `serve` can also come from a
//! `HEADLOCK_*` environment variable or the TOML file given with `--config`; a flag wins
//! over the variable, which wins over the file.
//!
//! The doc comments here are `--help` text (clap prints them as written), not rustdoc:
//! a URL or a `<placeholder>` in them stays plain.
#![allow(rustdoc::bare_urls, rustdoc::invalid_html_tags)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Headlock keeps MongoDB backups encrypted under master keys held in a KMIP server, and
/// speaks the MongoDB Ops Manager public API.
#[derive(Debug, Parser)]
#[command(name = "headlock", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: the API, and (unless external KMIP servers are configured) the
    /// embedded KMIP server.
    ///
    /// With no flags: API on http://127.0.0.1:8080, data under ./headlock-data (SQLite,
    /// the embedded KMIP server's keys and certificates).
    Serve(ServeArgs),
    /// Bring the metadata store's schema up to date and print its version (`serve` does
    /// this at start too; run it on its own to upgrade before starting several nodes).
    Migrate(DataArgs),
    /// Manage API users (works whether or not the service is running).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Run the embedded KMIP server on its own, for development with other KMIP clients.
    ///
    /// It keeps keys in a SQLite file on local disk: it is NOT a hardware security module
    /// and not a substitute for one.
    KmipServer(KmipServerArgs),
    /// Groups (Ops Manager projects), through the API: create, list, get.
    #[command(after_long_help = GROUPS_EXAMPLES)]
    Groups(GroupsArgs),
    /// Clusters, through the API: register (replica set or sharded), list, get, delete
    /// (asks for confirmation).
    #[command(after_long_help = CLUSTERS_EXAMPLES)]
    Clusters(ClustersArgs),
    /// Backup configurations, through the API: list, get, set (encryption on/off, status, ...).
    #[command(after_long_help = BACKUP_CONFIGS_EXAMPLES)]
    BackupConfigs(BackupConfigsArgs),
    /// A cluster's backup master key, through the API: show, rotate, history, rotation
    /// schedule and retirement, declare it compromised, cancel a scheduled destruction.
    #[command(after_long_help = ENCRYPTION_KEY_EXAMPLES)]
    EncryptionKey(EncryptionKeyArgs),
    /// Re-encryption jobs (started by `encryption-key compromised`), through the API:
    /// list, get (and wait for one to end).
    #[command(after_long_help = REENCRYPTION_JOBS_EXAMPLES)]
    ReencryptionJobs(ReencryptionJobsArgs),
    /// A cluster's snapshots, through the API: list, get, set (expiry, do-not-delete),
    /// delete (asks for confirmation).
    #[command(after_long_help = SNAPSHOTS_EXAMPLES)]
    Snapshots(SnapshotsArgs),
    /// Restore jobs, through the API: create one (prints its one-time download link
    /// without downloading), list, get. `headlock restore` also downloads.
    #[command(after_long_help = RESTORE_JOBS_EXAMPLES)]
    RestoreJobs(RestoreJobsArgs),
    /// A group's audit events (newest first), through the API: list, get.
    #[command(after_long_help = EVENTS_EXAMPLES)]
    Events(EventsArgs),
    /// The service's health in detail (GET /health under the API base; users with a
    /// global role): database, each KMIP server, latencies.
    #[command(after_long_help = HEALTH_EXAMPLES)]
    Health(HealthArgs),
    /// Back up a directory, a file or standard input as a new encrypted snapshot of a
    /// cluster, through the API; prints the snapshot's id.
    #[command(after_long_help = BACKUP_EXAMPLES)]
    Backup(BackupArgs),
    /// Restore a snapshot into a directory or onto standard output, through a restore
    /// job of the API.
    #[command(after_long_help = RESTORE_EXAMPLES)]
    Restore(RestoreArgs),
    /// Check that snapshots can be restored: every chunk's authentication tag and the
    /// manifest, read back by the service. Exit status 5 if damage is found.
    #[command(after_long_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
    /// Print a shell completion script for SHELL on standard output, generated from
    /// these definitions.
    #[command(
        after_long_help = "Examples:\n  headlock completions bash > /etc/bash_completion.d/headlock\n  headlock completions zsh > \"${fpath[1]}/_headlock\"\n  headlock completions fish > ~/.config/fish/completions/headlock.fish"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on standard output, or write one page per command
    /// into a directory.
    #[command(
        after_long_help = "Examples:\n  headlock man | man -l -\n  headlock man --dir /usr/local/share/man/man1     # headlock.1, headlock-snapshots-delete.1, ..."
    )]
    Man {
        /// Write headlock.1 and a page for every subcommand (headlock-SUB-SUB.1) here
        /// (created if missing), instead of headlock.1 on standard output.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data directory: SQLite metadata, the embedded KMIP server's keys and certificates.
    #[arg(long, env = "HEADLOCK_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long, env = "HEADLOCK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Metadata database: postgres://USER@HOST/DB for several nodes on one PostgreSQL
    /// [default: SQLite in the data directory]. Prefer the variable to the flag when
    /// the URL holds a password.
    #[arg(
        long,
        env = "HEADLOCK_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
}

/// `headlock serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address of the API [default: 127.0.0.1:8080].
    #[arg(long, env = "HEADLOCK_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Certificate chain (PEM) to serve the API over HTTPS on the same port.
    #[arg(
        long,
        env = "HEADLOCK_TLS_CERT_FILE",
        value_name = "FILE",
        requires = "tls_key_file"
    )]
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert-file.
    #[arg(
        long,
        env = "HEADLOCK_TLS_KEY_FILE",
        value_name = "FILE",
        requires = "tls_cert_file"
    )]
    pub tls_key_file: Option<PathBuf>,
    /// External KMIP servers, comma-separated, tried in order (like mongod
    /// --kmipServerName). When absent, the embedded KMIP server is used.
    #[arg(
        long,
        env = "HEADLOCK_KMIP_SERVERS",
        value_name = "HOST[:PORT],...",
        value_delimiter = ','
    )]
    pub kmip_servers: Option<Vec<String>>,
    /// Port of KMIP servers given without one [default: 5696].
    #[arg(long, env = "HEADLOCK_KMIP_PORT", value_name = "PORT")]
    pub kmip_port: Option<u16>,
    /// CA certificate (PEM) that signs the KMIP servers' certificates.
    #[arg(long, env = "HEADLOCK_KMIP_CA_FILE", value_name = "FILE")]
    pub kmip_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) presented to the KMIP servers.
    #[arg(long, env = "HEADLOCK_KMIP_CLIENT_CERT_FILE", value_name = "FILE")]
    pub kmip_client_cert_file: Option<PathBuf>,
    /// Private key (PEM) of the client certificate; may be an encrypted PKCS#8 key
    /// (ENCRYPTED PRIVATE KEY), with --kmip-client-key-password-file.
    #[arg(long, env = "HEADLOCK_KMIP_CLIENT_KEY_FILE", value_name = "FILE")]
    pub kmip_client_key_file: Option<PathBuf>,
    /// File whose first line is the password of an encrypted client key (a file, not
    /// a flag: command lines are visible to every user of the machine).
    #[arg(
        long,
        env = "HEADLOCK_KMIP_CLIENT_KEY_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub kmip_client_key_password_file: Option<PathBuf>,
    /// Public origin of the API for links (e.g. https://backup.example.com); default:
    /// taken from each request's Host header.
    #[arg(long, env = "HEADLOCK_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Keep chunks in this S3 bucket instead of <data-dir>/chunks (credentials from
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the config file).
    #[arg(long, env = "HEADLOCK_S3_BUCKET", value_name = "BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 endpoint for S3-compatible stores (MinIO, moto, ...) [default: AWS].
    #[arg(long, env = "HEADLOCK_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: AWS_REGION, else us-east-1].
    #[arg(long, env = "HEADLOCK_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Allow a plain http:// S3 endpoint (a test server on loopback); without it `serve`
    /// refuses one (s3.allow_http in the config file).
    #[arg(long, env = "HEADLOCK_S3_ALLOW_HTTP")]
    pub s3_allow_http: bool,
}

/// `headlock users ...`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user and print its new API key on standard output, once.
    Create {
        #[command(flatten)]
        data: DataArgs,
        /// Username (what `curl -u USERNAME:KEY` sends).
        #[arg(long)]
        username: String,
        /// GLOBAL_OWNER, GLOBAL_READ_ONLY, or per group GROUP_OWNER, GROUP_BACKUP_ADMIN,
        /// GROUP_READ_ONLY.
        #[arg(long)]
        role: String,
        /// Group id, for the group roles.
        #[arg(long, value_name = "GROUP-ID")]
        group: Option<String>,
    },
    /// List users and their roles (never their keys).
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Delete a user.
    Delete {
        #[command(flatten)]
        data: DataArgs,
        /// Username.
        #[arg(long)]
        username: String,
    },
    /// Replace a user's API key and print the new one, once; a running server stops
    /// accepting the old key within a second.
    RegenerateKey {
        #[command(flatten)]
        data: DataArgs,
        /// Username.
        #[arg(long)]
        username: String,
    },
    /// Set the addresses (IPs and CIDR blocks) a user may call the API from; none: any.
    AccessList {
        #[command(flatten)]
        data: DataArgs,
        /// Username.
        #[arg(long)]
        username: String,
        /// Comma-separated entries (e.g. 10.0.0.0/8,192.0.2.7); empty clears the list.
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        set: Vec<String>,
    },
}

/// `headlock kmip-server`.
#[derive(Debug, Clone, Args)]
pub struct KmipServerArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on.
    #[arg(
        long,
        env = "HEADLOCK_KMIP_LISTEN",
        default_value = "127.0.0.1:5696",
        value_name = "ADDR:PORT"
    )]
    pub listen: SocketAddr,
}

// ---------------------------------------------------------------------------------
// API client commands: `groups`, `clusters`, `backup-configs`, `encryption-key`,
// `reencryption-jobs`, `snapshots`, `restore-jobs`, `events`, `health`. They talk to a
// running service over HTTP(S) with Digest authentication.

/// How the API client commands reach the API and as whom. The API key is never a
/// flag (it would show in `ps`): it comes from `HEADLOCK_API_KEY` or `--api-key-file`.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Base URL of the Headlock API (the part before /api/public/v1.0).
    #[arg(
        long,
        env = "HEADLOCK_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL",
        global = true,
        help_heading = "API connection"
    )]
    pub url: String,
    /// API username (as created by `headlock users create`).
    #[arg(
        long,
        env = "HEADLOCK_USERNAME",
        value_name = "NAME",
        global = true,
        help_heading = "API connection"
    )]
    pub username: Option<String>,
    /// File holding the API key (its first line; surrounding whitespace ignored).
    /// Without it, the key comes from the HEADLOCK_API_KEY environment variable. No
    /// flag takes the key itself: command lines are visible to other users.
    #[arg(
        long,
        env = "HEADLOCK_API_KEY_FILE",
        value_name = "FILE",
        global = true,
        help_heading = "API connection"
    )]
    pub api_key_file: Option<PathBuf>,
    /// CA certificates (PEM) that sign the API's certificate, for an https:// URL
    /// [default: $SSL_CERT_FILE, else the system's CA bundle].
    #[arg(
        long,
        env = "HEADLOCK_CA_FILE",
        value_name = "FILE",
        global = true,
        help_heading = "API connection"
    )]
    pub ca_file: Option<PathBuf>,
    /// Seconds each request may take, from connecting to the last byte of the answer.
    #[arg(
        long,
        env = "HEADLOCK_TIMEOUT",
        default_value_t = 60,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=3600),
        global = true,
        help_heading = "API connection"
    )]
    pub timeout: u64,
}

/// How an API command prints the API's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// The API's JSON, pretty-printed: for scripts (jq), and the default.
    Json,
    /// A compact table for people: one row per item of a list, one line per field of
    /// a single answer.
    Table,
}

/// `--output` of the API commands.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// json: the API's JSON, pretty-printed (the default, what scripts read); table: a
    /// compact table for people. HEADLOCK_OUTPUT=table makes tables the default.
    #[arg(
        long,
        short = 'o',
        value_enum,
        env = "HEADLOCK_OUTPUT",
        value_name = "json|table",
        global = true,
        help_heading = "Output"
    )]
    pub output: Option<OutputFormat>,
}

impl OutputArgs {
    /// The format asked for, JSON when none was.
    pub fn format(&self) -> OutputFormat {
        self.output.unwrap_or(OutputFormat::Json)
    }
}

/// The cluster a command acts on: `--group G --cluster C`.
#[derive(Debug, Clone, Args)]
pub struct ClusterRef {
    /// Group id.
    #[arg(long, value_name = "GROUP-ID")]
    pub group: String,
    /// Cluster id.
    #[arg(long, value_name = "CLUSTER-ID")]
    pub cluster: String,
}

/// Paging of list commands (the API's `pageNum` and `itemsPerPage`).
#[derive(Debug, Clone, Args)]
pub struct PageArgs {
    /// Page to show, from 1 [API default: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub page_num: Option<u32>,
    /// Items per page, 1 to 500 [API default: 100].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=500))]
    pub items_per_page: Option<u32>,
}

/// The part of every API command's long help about connection, output and exit
/// status (a macro so `concat!` can join it to each command's examples).
macro_rules! api_help {
    () => {
        "
Connection and credentials (every API command; flags may also go after the subcommand):
  --url URL               or HEADLOCK_URL         [default: http://127.0.0.1:8080]
  --username NAME         or HEADLOCK_USERNAME
  HEADLOCK_API_KEY=KEY    or --api-key-file FILE  (never a flag: `ps` would show it)
  --ca-file FILE          or HEADLOCK_CA_FILE     (for an https:// URL)

Output: the API's JSON, pretty-printed, on standard output; --output table (or
HEADLOCK_OUTPUT=table) prints a compact table instead.
Exit status: 0 success; 1 local problem (unreadable key file, bad URL or CA file),
or a confirmation answered otherwise than asked; 2 usage error, or a destructive
command without --yes whose standard input is not a terminal; 3 the API refused the request (4xx: unauthorized, not found,
conflict, ...; its errorCode and detail on standard error); 4 the API failed (5xx)
or could not be reached (connection refused, TLS, timeout)."
    };
}

/// `headlock groups ...`.
#[derive(Debug, Clone, Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: GroupsCommand,
}

const GROUPS_EXAMPLES: &str = concat!(
    "Examples:
  export HEADLOCK_USERNAME=admin HEADLOCK_API_KEY=...   # printed by `headlock users create`
  headlock groups create prod
  headlock groups list
  headlock groups get 5f0c0ffee0c0ffee0c0ffee0
  headlock groups get --name prod
",
    api_help!()
);

/// Group subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum GroupsCommand {
    /// Create a group (POST /groups) and print it, with its new 24-hex id.
    #[command(after_long_help = "Example:\n  headlock groups create prod")]
    Create {
        /// Name of the new group.
        name: String,
    },
    /// List the groups the user can see (GET /groups).
    #[command(
        after_long_help = "Examples:\n  headlock groups list\n  headlock groups list --items-per-page 500 --page-num 2"
    )]
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one group, by id (GET /groups/{ID}) or by name (GET /groups/byName/{NAME}).
    #[command(
        after_long_help = "Examples:\n  headlock groups get 5f0c0ffee0c0ffee0c0ffee0\n  headlock groups get --name prod"
    )]
    Get {
        /// The group's id (24 hex digits).
        #[arg(
            value_name = "GROUP-ID",
            required_unless_present = "name",
            conflicts_with = "name"
        )]
        id: Option<String>,
        /// Look the group up by name instead.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
}

/// `headlock clusters ...`.
#[derive(Debug, Clone, Args)]
pub struct ClustersArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: ClustersCommand,
}

const CLUSTERS_EXAMPLES: &str = concat!(
    "Examples:
  headlock clusters register --group $G --name rs0 --replica-set rs0
  headlock clusters register --group $G --name shop \\
      --shard shop-0=shop-rs0 --shard shop-1=shop-rs1 --config-server-replica-set shop-config
  headlock clusters list --group $G
  headlock clusters list --group $G --parent $SHOP    # the parts of a sharded cluster
  headlock clusters get --group $G --cluster $C
  headlock clusters delete --group $G --cluster $C            # asks to type the cluster's name
  headlock clusters delete --group $G --cluster $C --yes      # in a script

A sharded cluster is registered as one entity for the whole cluster, one per shard and
one for the config server replica set; the answer lists the parts (with their ids)
under \"parts\".
",
    api_help!()
);

/// One `--shard NAME=REPLICA-SET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    /// `shardName`.
    pub name: String,
    /// `replicaSetName`.
    pub replica_set: String,
}

fn parse_shard(s: &str) -> Result<ShardSpec, String> {
    let (name, rs) = s.split_once('=').unwrap_or((s, s));
    let (name, rs) = (name.trim(), rs.trim());
    if name.is_empty() || rs.is_empty() {
        return Err("expected SHARD-NAME=REPLICA-SET-NAME (or just a name used for both)".into());
    }
    Ok(ShardSpec {
        name: name.to_string(),
        replica_set: rs.to_string(),
    })
}

/// Cluster subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ClustersCommand {
    /// Register a cluster for backup (POST /groups/{G}/clusters, a Headlock extension:
    /// Ops Manager discovers clusters through its agents). Without --replica-set or
    /// --shard, a replica set named like the cluster.
    #[command(
        after_long_help = "Examples:\n  headlock clusters register --group $G --name rs0                  # replica set rs0\n  headlock clusters register --group $G --name orders --replica-set rs-orders\n  headlock clusters register --group $G --name shop \\\n      --shard shop-0=shop-rs0 --shard shop-1=shop-rs1 --config-server-replica-set shop-config\n\nThe answer is the new cluster; a sharded one lists its shards and config server\nreplica set, each with its own id, under \"parts\"."
    )]
    Register {
        /// Group id.
        #[arg(long, value_name = "GROUP-ID")]
        group: String,
        /// Cluster name (clusterName).
        #[arg(long, value_name = "NAME")]
        name: String,
        /// A replica set: its replica set name [default: the cluster name].
        #[arg(long, value_name = "RS", conflicts_with = "shard")]
        replica_set: Option<String>,
        /// A sharded cluster: one shard, as SHARD-NAME=REPLICA-SET-NAME (or one name for
        /// both); repeat for each shard. Needs --config-server-replica-set.
        #[arg(long, value_name = "NAME=RS", value_parser = parse_shard, requires = "config_server_replica_set")]
        shard: Vec<ShardSpec>,
        /// The config server replica set of a sharded cluster.
        #[arg(long, value_name = "RS", requires = "shard")]
        config_server_replica_set: Option<String>,
    },
    /// List a group's clusters (GET /groups/{G}/clusters).
    #[command(
        after_long_help = "Examples:\n  headlock clusters list --group $G\n  headlock clusters list --group $G --parent $SHOP    # the parts of a sharded cluster"
    )]
    List {
        /// Group id.
        #[arg(long, value_name = "GROUP-ID")]
        group: String,
        /// Only the parts (shards, config servers) of this sharded cluster.
        #[arg(long, value_name = "CLUSTER-ID")]
        parent: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one cluster (GET /groups/{G}/clusters/{C}).
    #[command(after_long_help = "Example:\n  headlock clusters get --group $G --cluster $C")]
    Get {
        #[command(flatten)]
        at: ClusterRef,
    },
    /// Delete a cluster (DELETE /groups/{G}/clusters/{C}), revoking its master keys;
    /// refused while its backups hold snapshots. Asks for confirmation.
    #[command(
        after_long_help = "Examples:\n  headlock clusters delete --group $G --cluster $C         # shows the cluster, asks to type its name\n  headlock clusters delete --group $G --cluster $C --yes   # scripts: no question\n\nWithout --yes, standard input must be a terminal (else exit status 2, nothing deleted)."
    )]
    Delete {
        #[command(flatten)]
        at: ClusterRef,
        #[command(flatten)]
        confirm: ConfirmArgs,
    },
}

/// `headlock backup-configs ...`.
#[derive(Debug, Clone, Args)]
pub struct BackupConfigsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: BackupConfigsCommand,
}

const BACKUP_CONFIGS_EXAMPLES: &str = concat!(
    "Examples:
  headlock backup-configs list --group $G
  headlock backup-configs get --group $G --cluster $C
  headlock backup-configs set --group $G --cluster $C --encryption on
  headlock backup-configs set --group $G --cluster $C --status STOPPED
  headlock backup-configs set --group $G --cluster $C --excluded-namespaces db.logs,db.tmp
  headlock backup-configs set --group $G --cluster $C --excluded-namespaces   # clears the list

Turning encryption on creates each part's first master key in the KMIP server. On a
sharded cluster, set applies to every shard and the config servers; on a single shard
it is refused (CANNOT_MODIFY_SHARD_BACKUP_CONFIG).
",
    api_help!()
);

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Enabled (`true`).
    On,
    /// Disabled (`false`).
    Off,
}

/// The `statusName` values a user may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BackupStatusArg {
    /// Start (or resume) backups.
    Started,
    /// Stop backups, keeping snapshots.
    Stopped,
    /// Terminate backups.
    Terminating,
}

/// The `authMechanismName` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthMechanismArg {
    /// SCRAM / MONGODB-CR.
    MongodbCr,
    /// Kerberos.
    Gssapi,
    /// LDAP.
    Plain,
    /// x.509 certificates.
    MongodbX509,
    /// No authentication.
    None,
}

/// `headlock backup-configs set`: only the fields given are changed.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
pub struct BackupConfigSetArgs {
    /// Group id.
    #[arg(long, value_name = "GROUP-ID")]
    pub group: String,
    /// Cluster id.
    #[arg(long, value_name = "CLUSTER-ID")]
    pub cluster: String,
    /// Encrypt backups under a KMIP master key (encryptionEnabled).
    #[arg(long, value_enum, value_name = "on|off", group = "change")]
    pub encryption: Option<OnOff>,
    /// Backup status (statusName).
    #[arg(
        long,
        value_enum,
        ignore_case = true,
        value_name = "STATUS",
        group = "change"
    )]
    pub status: Option<BackupStatusArg>,
    /// Storage engine name (storageEngineName), e.g. WIRED_TIGER.
    #[arg(long, value_name = "NAME", group = "change")]
    pub storage_engine: Option<String>,
    /// Whether the backup agent connects to the cluster over TLS (sslEnabled).
    #[arg(long, value_enum, value_name = "on|off", group = "change")]
    pub ssl: Option<OnOff>,
    /// Namespaces (db or db.collection) not to back up, comma-separated; given with no
    /// value, clears the list (excludedNamespaces).
    #[arg(long, value_name = "NS,...", value_delimiter = ',', num_args = 0.., group = "change")]
    pub excluded_namespaces: Option<Vec<String>>,
    /// The only namespaces to back up, comma-separated; given with no value, clears the
    /// list (includedNamespaces).
    #[arg(long, value_name = "NS,...", value_delimiter = ',', num_args = 0.., group = "change")]
    pub included_namespaces: Option<Vec<String>>,
    /// How the backup agent authenticates to the cluster (authMechanismName).
    #[arg(
        long,
        value_enum,
        ignore_case = true,
        value_name = "MECHANISM",
        group = "change"
    )]
    pub auth_mechanism: Option<AuthMechanismArg>,
}

/// Backup config subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum BackupConfigsCommand {
    /// List a group's backup configurations (GET /groups/{G}/backupConfigs).
    #[command(after_long_help = "Example:\n  headlock backup-configs list --group $G")]
    List {
        /// Group id.
        #[arg(long, value_name = "GROUP-ID")]
        group: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one cluster's backup configuration (GET /groups/{G}/backupConfigs/{C}).
    #[command(after_long_help = "Example:\n  headlock backup-configs get --group $G --cluster $C")]
    Get {
        #[command(flatten)]
        at: ClusterRef,
    },
    /// Change a backup configuration (PATCH /groups/{G}/backupConfigs/{C}) and print it.
    #[command(
        after_long_help = "Examples:\n  headlock backup-configs set --group $G --cluster $C --encryption on\n  headlock backup-configs set --group $G --cluster $C --status STOPPED\n  headlock backup-configs set --group $G --cluster $C --excluded-namespaces db.logs,db.tmp\n  headlock backup-configs set --group $G --cluster $C --excluded-namespaces   # clears it\n\nOnly the fields given are changed. Turning encryption on creates each part's first\nmaster key in the KMIP server. On a sharded cluster the change applies to every shard\nand the config servers; a single shard refuses it (CANNOT_MODIFY_SHARD_BACKUP_CONFIG)."
    )]
    Set(BackupConfigSetArgs),
}

/// `headlock encryption-key ...`.
#[derive(Debug, Clone, Args)]
pub struct EncryptionKeyArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: EncryptionKeyCommand,
}

const ENCRYPTION_KEY_EXAMPLES: &str = concat!(
    "Examples:
  headlock encryption-key get --group $G --cluster $C
  headlock encryption-key rotate --group $G --cluster $C
  rotated; current key: 3f2a...                    # the new KMIP Unique Identifier
  headlock encryption-key history --group $G --cluster $C --output table
  headlock encryption-key schedule --group $G --cluster $C --rotate-every-days 90 --destroy-retired-after-days 30
  headlock encryption-key compromised --group $G --cluster $C     # asks to type the cluster's name
  headlock encryption-key cancel-destruction --group $G --cluster $C --key 3f2a...

Rotation creates a new master key in the KMIP server and re-wraps the cluster's data
keys under it; no backup data is rewritten and every snapshot stays restorable. On a
whole sharded cluster it rotates every shard and the config servers. Encryption must be
on (`headlock backup-configs set --encryption on`), else CANNOT_ROTATE_KEY_ENCRYPTION_DISABLED.
",
    api_help!()
);

/// Encryption key subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum EncryptionKeyCommand {
    /// Show the current master key's KMIP id (GET /groups/{G}/backupConfigs/{C}/encryptionKey).
    #[command(
        after_long_help = "Example:\n  headlock encryption-key get --group $G --cluster $C\n\nOn a whole sharded cluster the answer lists each part's key under \"parts\"."
    )]
    Get {
        #[command(flatten)]
        at: ClusterRef,
    },
    /// Rotate the master key (PUT .../encryptionKey), then show the new key's id.
    #[command(
        after_long_help = "Examples:\n  headlock encryption-key rotate --group $G --cluster $C\n  rotated; current key: 3f2a...\n  headlock encryption-key rotate --group $G --cluster $SHOP     # every shard and the config servers\n  rotated; current keys: PART-ID=KEY-ID PART-ID=KEY-ID ...\n\nNo backup data is rewritten; every snapshot stays restorable. Encryption must be on,\nelse CANNOT_ROTATE_KEY_ENCRYPTION_DISABLED."
    )]
    Rotate {
        #[command(flatten)]
        at: ClusterRef,
        /// Print the JSON of the GET that follows the rotation instead of one line (the
        /// same as --output json).
        #[arg(long)]
        json: bool,
    },
    /// Every master key the cluster has had, newest first (GET .../encryptionKeys): state
    /// in the KMIP server, rotation type, who asked, what each protects now, scheduled
    /// destruction.
    #[command(
        after_long_help = "Examples:\n  headlock encryption-key history --group $G --cluster $C --output table\n  headlock encryption-key history --group $G --cluster $C | jq -r '.results[0].encryptionKeyUUID'"
    )]
    History {
        #[command(flatten)]
        at: ClusterRef,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Set the automatic rotation period and the destruction delay of retired keys
    /// (PATCH .../backupConfigs/{C} with encryptionKeyRotationPeriodDays,
    /// retiredKeyDestroyAfterDays), then print the backup configuration.
    #[command(
        after_long_help = "Examples:\n  headlock encryption-key schedule --group $G --cluster $C --rotate-every-days 90\n  headlock encryption-key schedule --group $G --cluster $C --destroy-retired-after-days 30\n  headlock encryption-key schedule --group $G --cluster $C --rotate-every-days 0   # no automatic rotation\n\n0 turns either off. The answer shows lastEncryptionKeyRotation and\nnextEncryptionKeyRotation. A retired key is destroyed in the KMIP server only once\nnothing references it; `cancel-destruction` keeps one for good. On a whole sharded\ncluster the settings apply to every part."
    )]
    #[command(group(clap::ArgGroup::new("setting").required(true).multiple(true)))]
    Schedule {
        #[command(flatten)]
        at: ClusterRef,
        /// Rotate the master key automatically this many days after the current one was
        /// made (1 to 3650); 0: never.
        #[arg(long, value_name = "DAYS", group = "setting", value_parser = clap::value_parser!(u32).range(0..=3650))]
        rotate_every_days: Option<u32>,
        /// Destroy a retired master key in the KMIP server this many days after its
        /// retirement, once nothing references it (1 to 3650); 0: never.
        #[arg(long, value_name = "DAYS", group = "setting", value_parser = clap::value_parser!(u32).range(0..=3650))]
        destroy_retired_after_days: Option<u32>,
    },
    /// Declare the current master key compromised (POST .../encryptionKey/compromised):
    /// revoke it as Key Compromise, rotate, and re-encrypt every snapshot under a new
    /// data key in a background job. Asks for confirmation.
    #[command(
        after_long_help = "Examples:\n  headlock encryption-key compromised --group $G --cluster $C        # shows the key, asks to type the cluster's name\n  headlock encryption-key compromised --group $G --cluster $C --yes  # scripts\n  headlock reencryption-jobs get --group $G --cluster $C --job $J --wait\n\nFor when the master key and the stored wrapped data keys may have leaked. It cannot\nbe undone: the old key is revoked in the KMIP server (state Compromised). The answer\nis the re-encryption job (one per part on a whole sharded cluster). Without --yes,\nstandard input must be a terminal (else exit status 2, nothing changed)."
    )]
    Compromised {
        #[command(flatten)]
        at: ClusterRef,
        #[command(flatten)]
        confirm: ConfirmArgs,
    },
    /// Cancel a retired key's scheduled destruction for good (POST
    /// .../encryptionKeys/{KEY}/restore) and print its history entry.
    #[command(
        after_long_help = "Example:\n  headlock encryption-key cancel-destruction --group $G --cluster $C --key 3f2a...\n\nThe key stays retired (Deactivated) in the KMIP server and is never destroyed by\nthe schedule. Refused for the current key or a destroyed one\n(CANNOT_CANCEL_KEY_DESTRUCTION)."
    )]
    CancelDestruction {
        #[command(flatten)]
        at: ClusterRef,
        /// The retired key's KMIP id (encryptionKeyUUID in `history`).
        #[arg(long, value_name = "KEY-ID")]
        key: String,
    },
}

/// `--yes` of the destructive commands.
#[derive(Debug, Clone, Args)]
pub struct ConfirmArgs {
    /// Do it without asking (for scripts). Without it the command shows what will
    /// happen and asks on the terminal; with no terminal it refuses.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `headlock reencryption-jobs ...`.
#[derive(Debug, Clone, Args)]
pub struct ReencryptionJobsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: ReencryptionJobsCommand,
}

const REENCRYPTION_JOBS_EXAMPLES: &str = concat!(
    "Examples:
  headlock reencryption-jobs list --group $G --cluster $C --output table
  headlock reencryption-jobs get --group $G --cluster $C --job $J
  headlock reencryption-jobs get --group $G --cluster $C --job $J --wait   # until it ends

A job rewrites every snapshot of a cluster under a new data key after
`headlock encryption-key compromised`, then destroys the old data key. With --wait,
exit status 0 when the job FINISHED and 5 when it FAILED (its errorMessage on standard
error).
",
    api_help!()
);

/// Re-encryption job subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ReencryptionJobsCommand {
    /// List a cluster's re-encryption jobs, newest first (GET
    /// .../backupConfigs/{C}/reencryptionJobs; every part's for a whole sharded cluster).
    #[command(
        after_long_help = "Example:\n  headlock reencryption-jobs list --group $G --cluster $C --output table"
    )]
    List {
        #[command(flatten)]
        at: ClusterRef,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one job (GET .../reencryptionJobs/{J}): status, snapshots and bytes done.
    #[command(
        after_long_help = "Examples:\n  headlock reencryption-jobs get --group $G --cluster $C --job $J\n  headlock reencryption-jobs get --group $G --cluster $C --job $J --wait\n\nWith --wait it asks every 2 seconds (progress on standard error) until the job is\nno longer RUNNING, then prints it: exit status 0 if FINISHED, 5 if FAILED."
    )]
    Get {
        #[command(flatten)]
        at: ClusterRef,
        /// Job id.
        #[arg(long, value_name = "JOB-ID")]
        job: String,
        /// Wait until the job has ended.
        #[arg(long)]
        wait: bool,
    },
}

/// `headlock snapshots ...`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: SnapshotsCommand,
}

const SNAPSHOTS_EXAMPLES: &str = concat!(
    "Examples:
  headlock snapshots list --group $G --cluster $C --output table
  headlock snapshots get --group $G --cluster $C --snapshot $S
  headlock snapshots set --group $G --cluster $C --snapshot $S --do-not-delete on
  headlock snapshots set --group $G --cluster $C --snapshot $S --expires 2027-01-31T00:00:00Z
  headlock snapshots delete --group $G --cluster $C --snapshot $S   # asks first

`headlock backup` makes snapshots, `headlock restore` restores them, `headlock verify`
checks them.
",
    api_help!()
);

/// Snapshot subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum SnapshotsCommand {
    /// List a cluster's snapshots, newest first (GET /groups/{G}/clusters/{C}/snapshots).
    #[command(
        after_long_help = "Example:\n  headlock snapshots list --group $G --cluster $C --output table"
    )]
    List {
        #[command(flatten)]
        at: ClusterRef,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one snapshot (GET .../snapshots/{S}): sizes, kind, the master key protecting it.
    #[command(
        after_long_help = "Example:\n  headlock snapshots get --group $G --cluster $C --snapshot $S"
    )]
    Get {
        #[command(flatten)]
        at: ClusterRef,
        /// Snapshot id.
        #[arg(long, value_name = "SNAPSHOT-ID")]
        snapshot: String,
    },
    /// Change a snapshot's expiry or do-not-delete flag (PATCH .../snapshots/{S}) and
    /// print it.
    #[command(
        after_long_help = "Examples:\n  headlock snapshots set --group $G --cluster $C --snapshot $S --do-not-delete on\n  headlock snapshots set --group $G --cluster $C --snapshot $S --expires 2027-01-31T00:00:00Z\n  headlock snapshots set --group $G --cluster $C --snapshot $S --expires never\n\nA snapshot with do-not-delete on cannot be deleted\n(CANNOT_DELETE_SNAPSHOT_DO_NOT_DELETE)."
    )]
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
    Set {
        #[command(flatten)]
        at: ClusterRef,
        /// Snapshot id.
        #[arg(long, value_name = "SNAPSHOT-ID")]
        snapshot: String,
        /// When it expires: an RFC 3339 date and time (2027-01-31T00:00:00Z), or
        /// `never` to clear the expiry.
        #[arg(long, value_name = "DATE|never", group = "change")]
        expires: Option<String>,
        /// Protect the snapshot from deletion (doNotDelete).
        #[arg(long, value_enum, value_name = "on|off", group = "change")]
        do_not_delete: Option<OnOff>,
    },
    /// Delete a snapshot (DELETE .../snapshots/{S}); what no other snapshot uses is then
    /// collected. Asks for confirmation.
    #[command(
        after_long_help = "Examples:\n  headlock snapshots delete --group $G --cluster $C --snapshot $S         # shows it, asks\n  headlock snapshots delete --group $G --cluster $C --snapshot $S --yes   # scripts\n\nIt cannot be undone. Without --yes, standard input must be a terminal (else exit\nstatus 2, nothing deleted)."
    )]
    Delete {
        #[command(flatten)]
        at: ClusterRef,
        /// Snapshot id.
        #[arg(long, value_name = "SNAPSHOT-ID")]
        snapshot: String,
        #[command(flatten)]
        confirm: ConfirmArgs,
    },
}

/// `headlock restore-jobs ...`.
#[derive(Debug, Clone, Args)]
pub struct RestoreJobsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: RestoreJobsCommand,
}

const RESTORE_JOBS_EXAMPLES: &str = concat!(
    "Examples:
  headlock restore-jobs create --group $G --cluster $C --snapshot $S
  headlock restore-jobs list --group $G --cluster $C --output table
  headlock restore-jobs get --group $G --cluster $C --job $J

`create` prints the job with its one-time HTTP download link (delivery.url, valid
for an hour, one download, no credentials needed: treat it as a secret). To restore
in one step, use `headlock restore`.
",
    api_help!()
);

/// Restore job subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum RestoreJobsCommand {
    /// Create a restore job (POST .../restoreJobs) and print it, with its one-time
    /// download link; nothing is downloaded.
    #[command(
        after_long_help = "Example:\n  headlock restore-jobs create --group $G --cluster $C --snapshot $S | jq -r '.results[0].delivery.url'"
    )]
    Create {
        #[command(flatten)]
        at: ClusterRef,
        /// Snapshot id.
        #[arg(long, value_name = "SNAPSHOT-ID")]
        snapshot: String,
    },
    /// List a cluster's restore jobs (GET .../restoreJobs).
    #[command(
        after_long_help = "Example:\n  headlock restore-jobs list --group $G --cluster $C --output table"
    )]
    List {
        #[command(flatten)]
        at: ClusterRef,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one restore job (GET .../restoreJobs/{J}): its delivery status, and its link
    /// while unused (to users who may restore).
    #[command(
        after_long_help = "Example:\n  headlock restore-jobs get --group $G --cluster $C --job $J"
    )]
    Get {
        #[command(flatten)]
        at: ClusterRef,
        /// Restore job id.
        #[arg(long, value_name = "JOB-ID")]
        job: String,
    },
}

/// `headlock health`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

const HEALTH_EXAMPLES: &str = concat!(
    "Examples:
  headlock health
  headlock health --output table

The detailed form of the unauthenticated GET /health: node id, whether the database
and each KMIP server answered, latencies, errors. Users with a global role only.
",
    api_help!()
);

/// `headlock events ...`.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: EventsCommand,
}

const EVENTS_EXAMPLES: &str = concat!(
    "Examples:
  headlock events list --group $G
  headlock events list --group $G --items-per-page 500 --page-num 2
  headlock events list --group $G --output table
  headlock events get --group $G --event $E
",
    api_help!()
);

/// Event subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum EventsCommand {
    /// List a group's events, newest first (GET /groups/{G}/events): key creations and
    /// rotations with the old and new key ids, configuration changes, failures.
    #[command(
        after_long_help = "Examples:\n  headlock events list --group $G\n  headlock events list --group $G --items-per-page 500 --page-num 2"
    )]
    List {
        /// Group id.
        #[arg(long, value_name = "GROUP-ID")]
        group: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one event (GET /groups/{G}/events/{E}).
    #[command(after_long_help = "Example:\n  headlock events get --group $G --event $E")]
    Get {
        /// Group id.
        #[arg(long, value_name = "GROUP-ID")]
        group: String,
        /// Event id.
        #[arg(long, value_name = "EVENT-ID")]
        event: String,
    },
}

// ---------------------------------------------------------------------------------
// Snapshot commands: `backup`, `restore`, `verify`.

/// The part of the snapshot commands' long help about connection and exit status.
macro_rules! snapshot_help {
    () => {
        "
Connection and credentials: as every API command (--url, --username, HEADLOCK_API_KEY
or --api-key-file, --ca-file). --timeout is the longest time without progress, not
the length of the transfer.

Progress goes to standard error: a bar on a terminal, a line every 5 s elsewhere
(HEADLOCK_PROGRESS_INTERVAL=SECONDS changes it), nothing with --quiet. Standard output carries only the result (the snapshot id, or
the data with --target -).
Exit status: 0 success; 1 local problem (unreadable input, target not empty, bad
key file); 2 usage error; 3 the API refused the request (4xx, e.g.
CANNOT_BACKUP_ENCRYPTION_DISABLED, an unknown snapshot, a used download link); 4 the
API failed (5xx) or could not be reached, or the transfer broke off."
    };
}

/// `headlock backup`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Group id.
    #[arg(long, value_name = "GROUP-ID")]
    pub group: String,
    /// Cluster id (a replica set, or one shard or config server replica set of a
    /// sharded cluster); its backup configuration must have encryption on.
    #[arg(long, value_name = "CLUSTER-ID")]
    pub cluster: String,
    /// What to back up: a directory (sent as a tar stream of its files, directories
    /// and symbolic links, with modes and modification times), a file, or - for
    /// standard input.
    #[arg(value_name = "PATH|-")]
    pub path: PathBuf,
    /// No progress display on standard error.
    #[arg(long, short)]
    pub quiet: bool,
    /// Send a directory as one tar stream for the service to chunk (`POST
    /// .../snapshots`), instead of chunking here and sending only the chunks the
    /// cluster lacks (an upload session, the default).
    #[arg(long)]
    pub plain: bool,
    /// Compare files with this snapshot of the cluster instead of the newest one of
    /// the same directory: a file whose size, modification and change times, inode
    /// and mode are those it recorded is taken from it without being read.
    #[arg(long, value_name = "SNAPSHOT-ID", conflicts_with_all = ["force", "plain"])]
    pub parent: Option<String>,
    /// Read every file, even those unchanged since the parent snapshot.
    #[arg(long, conflicts_with = "plain")]
    pub force: bool,
    /// Uploads in flight at once, each on a connection of its own (1 to 8): while the
    /// service makes one upload durable it already receives the next. 1 sends one at
    /// a time.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2,
        value_parser = clap::value_parser!(u8).range(1..=8),
        conflicts_with = "plain"
    )]
    pub connections: u8,
}

const BACKUP_EXAMPLES: &str = concat!(
    "Examples:
  headlock backup --group $G --cluster $C /backups/rs0-dbpath     # a stopped secondary's dbpath
  mongodump --archive | headlock backup --group $G --cluster $C -
  S=$(headlock backup --quiet --group $G --cluster $C ./dump)     # only the id on stdout

A directory is cut into chunks here, with the cluster's keyed chunker, and only the
chunks the cluster does not already have are sent (an upload session; an interrupted
backup run again sends only what is still missing); the service checks every chunk's
id, compresses and encrypts it under the cluster's data keys. A file or standard
input streams to the service as it is read, as does a directory with --plain (memory
stays bounded whatever the size), and the service chunks and deduplicates it. A directory is read depth first without following symbolic
links; sockets, FIFOs and devices are skipped with a warning; a file that shrinks
while it is read fails the backup (copy from a stopped or fsync-locked member).
If the backup fails, nothing of it is kept.
",
    snapshot_help!()
);

/// `headlock restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Group id.
    #[arg(long, value_name = "GROUP-ID")]
    pub group: String,
    /// Cluster id.
    #[arg(long, value_name = "CLUSTER-ID")]
    pub cluster: String,
    /// Snapshot id (as printed by `headlock backup`).
    #[arg(long, value_name = "SNAPSHOT-ID")]
    pub snapshot: String,
    /// Where to: a directory (created if missing, and refused if not empty, unless
    /// --force), or - for standard output (a directory snapshot comes as a tar
    /// stream, a stream snapshot as its bytes).
    #[arg(long, value_name = "DIR|-")]
    pub target: PathBuf,
    /// Restore into a directory that is not empty, replacing files of the same names.
    #[arg(long)]
    pub force: bool,
    /// No progress display on standard error.
    #[arg(long, short)]
    pub quiet: bool,
}

const RESTORE_EXAMPLES: &str = concat!(
    "Examples:
  headlock restore --group $G --cluster $C --snapshot $S --target /restore/rs0
  headlock restore --group $G --cluster $C --snapshot $S --target - | mongorestore --archive
  headlock restore --group $G --cluster $C --snapshot $S --target - | tar -t   # list a tree

This creates a restore job (POST .../restoreJobs) and downloads its one-time HTTP
link. A directory snapshot comes back with its files, sizes, modes (without set-user-ID
and set-group-ID bits) and modification times, and its symbolic links as links;
entries with absolute paths or `..` are refused, and nothing is written through a
symbolic link. A stream snapshot restored into a directory is written to
DIR/snapshot-<SNAPSHOT-ID>.bin.
",
    snapshot_help!()
);

/// `headlock verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Group id.
    #[arg(long, value_name = "GROUP-ID")]
    pub group: String,
    /// Cluster id.
    #[arg(long, value_name = "CLUSTER-ID")]
    pub cluster: String,
    /// Only this snapshot [default: every snapshot of the cluster].
    #[arg(long, value_name = "SNAPSHOT-ID")]
    pub snapshot: Option<String>,
}

const VERIFY_EXAMPLES: &str = "Examples:
  headlock verify --group $G --cluster $C
  5f0c0ffee0c0ffee0c0ffee1 ok
  5f0c0ffee0c0ffee0c0ffee0 DAMAGED: chunk 9a3c... in pack 6b0c... (authentication failed), used by snapshots 5f0c...e0, 5f0c...d7
  headlock verify --group $G --cluster $C --snapshot $S

The service reads every chunk of each snapshot back, checks its authentication tag and
the snapshot's manifest, and names each damaged chunk, its pack, and every snapshot
that uses it. One line per snapshot on standard output. Each check may take up to
an hour, or --timeout if longer: the service reads the whole snapshot.

Connection and credentials: as every API command.
Exit status: 0 every snapshot checked is intact; 5 damage was found (the lines say
where); 1 local problem; 2 usage error; 3 the API refused a request (4xx); 4 the API
failed (5xx) or could not be reached. When some checks fail and others find damage,
the status is 5.";

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks its own rules (conflicts, groups, short flags) only when asked.
    #[test]
    fn accepts_the_command_definitions() {
        super::Cli::command().debug_assert();
    }
}
