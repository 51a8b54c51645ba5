//! `obi`: run the agent, or check whether this machine can run it.

fn main() -> std::process::ExitCode {
    obi::main()
}
