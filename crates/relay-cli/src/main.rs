//! `relay`: run the whole relay locally (`relay dev`) and manage sources, subscriptions, events,
//! replay and redrive on the local store or a deployed stack.

mod admin;
mod args;
mod backend;
mod console;
mod destinations;
mod dev;
mod errors;
mod filters;
mod output;
mod reconcile;
mod recover;
mod when;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    let json = cli.global.json;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let kind = errors::Kind::of(&error);
            output::print_error(json, kind, &error);
            ExitCode::from(kind.exit_code())
        }
    }
}

/// Help and version go to stdout as usual; usage errors exit 2, as JSON under `--json`.
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) || !std::env::args().any(|arg| arg == "--json")
    {
        let _ = error.print();
        return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
    }
    let message = error.render().to_string();
    let first_line = message.lines().next().unwrap_or("usage error");
    let first_line = first_line.strip_prefix("error: ").unwrap_or(first_line);
    eprintln!(
        "{}",
        serde_json::json!({ "error": { "message": first_line, "kind": "usage", "usage": message } })
    );
    ExitCode::from(2)
}

async fn run(cli: args::Cli) -> anyhow::Result<()> {
    match cli.command {
        args::Command::Dev(options) => dev::run(&cli.global, options).await,
        args::Command::Console(options) => console::run(&cli.global, options).await,
        args::Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut args::Cli::command(), "relay", &mut script);
            output::print_line(String::from_utf8_lossy(&script).trim_end());
            Ok(())
        }
        args::Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(args::Cli::command()).render(&mut page)?;
            output::print_line(String::from_utf8_lossy(&page).trim_end());
            Ok(())
        }
        command => {
            // Only adding a source may start a local store; other commands read or change one.
            let creates = matches!(
                command,
                args::Command::Sources(args::SourcesCommand::Add { .. })
            );
            let backend = backend::Backend::open(&cli.global, creates).await?;
            admin::run(&backend, &cli.global, command).await
        }
    }
}
