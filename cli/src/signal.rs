//! The signals that stop a fjord process: SIGTERM (Kubernetes, systemd) and SIGINT (a
//! terminal). Both binaries drain and exit the same way on either.

/// Waits for SIGTERM or SIGINT. Where the handlers cannot be installed, falls back to
/// Ctrl-C alone rather than never returning.
pub async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
