//! `relay`: run the whole relay locally (`relay dev`) and manage sources, subscriptions, events,
//! replay and redrive on the local store or a deployed stack.

mod admin;
mod args;
mod backend;
mod dev;
mod output;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let json = cli.global.json;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            output::print_error(json, &error);
            ExitCode::from(1)
        }
    }
}

async fn run(cli: args::Cli) -> anyhow::Result<()> {
    match cli.command {
        args::Command::Dev(options) => dev::run(&cli.global, options).await,
        command => {
            let backend = backend::Backend::open(&cli.global).await?;
            admin::run(&backend, &cli.global, command).await
        }
    }
}
