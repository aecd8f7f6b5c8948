//! `lien trust`, `lien delegate`, `lien revoke`, `lien audit`: the trust store and the audit log,
//! through the node's API.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use lien_http::api::trust::{AuditView, DelegateBody, ImportBody, RecordView, RevokeBody, TrustKeyBody, TrustView};
use reqwest::Method;

use crate::client::with_api;
use crate::output::Out;

/// `lien trust ...`
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Show the trust roots, trusted publishers and this node's own keys.
    #[command(after_help = "Example:\n  lien trust ls")]
    Ls,
    /// Trust a key: as a root (its delegations count) or as a publisher (accepted directly).
    #[command(after_help = "Example:\n  lien trust add 7xq4...kq --root")]
    Add(TrustAddArgs),
    /// Stop trusting a key added with `lien trust add`.
    #[command(after_help = "Example:\n  lien trust rm 7xq4...kq")]
    Rm(KeyArg),
    /// Import delegations and revocations (hex, one per line) from a file and spread them.
    #[command(after_help = "Example:\n  lien trust import ./delegations.txt")]
    Import(FileArg),
}

/// `lien trust add`
#[derive(Debug, Args)]
pub struct TrustAddArgs {
    /// The key (52 characters).
    pub key: String,
    /// Trust it as a root whose delegations are accepted (default: as a publisher).
    #[arg(long)]
    pub root: bool,
}

/// A key argument.
#[derive(Debug, Args)]
pub struct KeyArg {
    /// The key (52 characters).
    pub key: String,
}

/// A file argument.
#[derive(Debug, Args)]
pub struct FileArg {
    /// The file.
    pub file: PathBuf,
}

/// `lien delegate`
#[derive(Debug, Args)]
pub struct DelegateArgs {
    /// The key vouched for: an agency's publisher key, or a node key for read access.
    #[arg(long, value_name = "KEY")]
    pub to: String,
    /// The organisation it belongs to.
    #[arg(long = "org", value_name = "NAME")]
    pub organisation: String,
    /// Dataset names it may publish must start with this.
    #[arg(long, value_name = "PREFIX", default_value = "")]
    pub prefix: String,
    /// Days of validity.
    #[arg(long, value_name = "N", default_value_t = 365)]
    pub days: u64,
    /// Let it delegate further (a ministry certifying its departments).
    #[arg(long)]
    pub can_delegate: bool,
}

/// `lien revoke`
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The key withdrawn.
    pub key: String,
    /// Why.
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// `lien audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// How many of the newest entries to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

fn print_trust(v: &TrustView, out: &Out) -> Result<()> {
    if out.json {
        return out.json(v);
    }
    out.line(format!("node key    {}", v.node_key));
    out.line(format!("publisher   {}", v.publisher));
    if v.open {
        out.line("policy      open network: any validly signed manifest is accepted");
    }
    for r in &v.roots {
        out.line(format!("root        {r}"));
    }
    for p in &v.publishers {
        out.line(format!("publisher   {p}  (trusted directly)"));
    }
    out.line(format!("max depth   {}", v.max_depth));
    Ok(())
}

fn print_record(r: &RecordView, out: &Out) -> Result<()> {
    if out.json {
        return out.json(r);
    }
    eprintln!("{}: {}", r.kind, r.summary);
    out.line(&r.record);
    Ok(())
}

/// `lien trust ...`
pub async fn trust(home: &Path, cmd: TrustCommand, out: &Out) -> Result<()> {
    match cmd {
        TrustCommand::Ls => {
            let v: TrustView = with_api(home, async |api| api.get("/v1/trust").await).await?;
            print_trust(&v, out)
        }
        TrustCommand::Add(a) => {
            let kind = if a.root { "root" } else { "publisher" };
            let body = TrustKeyBody { key: a.key.clone(), kind: kind.into() };
            let v: TrustView = with_api(home, async |api| api.call(Method::POST, "/v1/trust", Some(&body)).await)
                .await
                .with_context(|| format!("cannot trust {}", a.key))?;
            print_trust(&v, out)
        }
        TrustCommand::Rm(k) => {
            let path = format!("/v1/trust/{}", k.key);
            let v: TrustView = with_api(home, async |api| api.call(Method::DELETE, &path, None::<&()>).await)
                .await
                .with_context(|| format!("cannot stop trusting {}", k.key))?;
            print_trust(&v, out)
        }
        TrustCommand::Import(f) => {
            let text = std::fs::read_to_string(&f.file).with_context(|| format!("cannot read {}", f.file.display()))?;
            let records: Vec<&str> =
                text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
            if records.is_empty() {
                bail!("{} holds no records (one hex record per line)", f.file.display());
            }
            let views: Vec<RecordView> = with_api(home, async |api| {
                let mut views = Vec::new();
                for (i, r) in records.iter().enumerate() {
                    let body = ImportBody { record: (*r).to_owned() };
                    let v: RecordView = api
                        .call(Method::POST, "/v1/trust/records", Some(&body))
                        .await
                        .with_context(|| format!("record on line {} of {}", i + 1, f.file.display()))?;
                    views.push(v);
                }
                Ok(views)
            })
            .await?;
            if out.json {
                return out.json(&views);
            }
            for v in views {
                match v.status.as_str() {
                    "not-trusted" => out.line(format!(
                        "not used {} {}: {} (its issuer is not trusted here to sign it: add its root with \
                         `lien trust add KEY --root`, or import the delegation that vouches for the issuer)",
                        v.kind, v.id, v.summary
                    )),
                    s if s.starts_with("refused") => out.line(format!("{s} {} {}: {}", v.kind, v.id, v.summary)),
                    _ => out.line(format!("imported {} {}: {}", v.kind, v.id, v.summary)),
                }
            }
            Ok(())
        }
    }
}

/// `lien delegate`
pub async fn delegate(home: &Path, a: DelegateArgs, out: &Out) -> Result<()> {
    let body = DelegateBody {
        to: a.to,
        organisation: a.organisation,
        prefix: a.prefix,
        days: a.days,
        can_delegate: a.can_delegate,
    };
    let r: RecordView = with_api(home, async |api| api.call(Method::POST, "/v1/delegate", Some(&body)).await)
        .await
        .context("cannot sign the delegation")?;
    print_record(&r, out)
}

/// `lien revoke`
pub async fn revoke(home: &Path, a: RevokeArgs, out: &Out) -> Result<()> {
    let body = RevokeBody { key: a.key, reason: a.reason };
    let r: RecordView = with_api(home, async |api| api.call(Method::POST, "/v1/revoke", Some(&body)).await)
        .await
        .context("cannot sign the revocation")?;
    print_record(&r, out)
}

/// `lien audit`
pub async fn audit(home: &Path, a: AuditArgs, out: &Out) -> Result<()> {
    let path = format!("/v1/audit?limit={}", a.limit);
    let v: AuditView = with_api(home, async |api| api.get(&path).await).await.context("cannot read the audit log")?;
    if out.json {
        out.json(&v)?;
    } else {
        for e in &v.last {
            let f = &e.fields;
            out.line(format!(
                "{:>6} {} {} file {} chunks {}+{} {} bytes",
                f.seq,
                f.time,
                f.requester,
                f.file.short(),
                f.first,
                f.count,
                f.bytes
            ));
        }
        out.line(format!("{} entries in {}", v.entries, v.path));
    }
    match (v.intact, v.error) {
        (true, _) => Ok(()),
        (false, Some(e)) => bail!("the audit log has been tampered with: {e}"),
        (false, None) => bail!("the audit log does not verify"),
    }
}
