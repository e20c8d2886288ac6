//! The serve loop every service's `Application` wraps: bind, report the port, serve until the
//! shutdown future resolves (draining in-flight requests), and stop the service's background task
//! (order's outbox relay, inventory's Kafka consumer) after the last request.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ServerArgs;

/// A bound, not yet serving HTTP server.
pub struct Server {
    listener: TcpListener,
    router: Router,
    port: u16,
}

impl Server {
    /// Binds `BIND_ADDR:PORT` (port 0: the OS picks), logs `"{service} listening"` with the
    /// address and writes the bound port to `PORT_FILE` when one is set. Connections that arrive
    /// before [`Server::serve`] wait in the listen backlog, so the port may be announced here.
    pub async fn bind(args: &ServerArgs, service: &str, router: Router) -> anyhow::Result<Self> {
        let addr = SocketAddr::new(args.bind_addr, args.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        tracing::info!(addr = %local, port = local.port(), "{service} listening");
        if let Some(path) = &args.port_file {
            write_port_file(path, local.port())
                .with_context(|| format!("writing PORT_FILE {}", path.display()))?;
        }
        Ok(Self {
            listener,
            router,
            port: local.port(),
        })
    }

    /// The bound port (the OS's choice when `PORT` was 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")
    }

    /// Like [`Server::serve`], with `task` running alongside (when there is one). The task gets a
    /// receiver that turns `true` once the last request is done, and is awaited before this
    /// returns, so the process exits only after the task has finished its current unit of work.
    pub async fn serve_with<F, Fut>(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
        task: Option<F>,
    ) -> anyhow::Result<()>
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let task = task.map(|task| tokio::spawn(task(stopped)));
        let served = self.serve(shutdown).await;
        let _ = stop.send(true);
        let joined = match task {
            Some(task) => task.await.context("the background task panicked"),
            None => Ok(()),
        };
        served.and(joined)
    }
}

/// Writes `port` to `path` through a temporary file and a rename, so a reader polling for the
/// file never sees it empty or half written.
fn write_port_file(path: &Path, port: u16) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{port}\n"))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn port_zero_is_reported_in_the_port_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("svc.port");
        let mut args = ServerArgs::for_tests(1024);
        args.port_file = Some(file.clone());
        let server = Server::bind(&args, "svc", crate::health::always_ready())
            .await
            .unwrap();
        let port = server.port();
        assert_ne!(port, 0);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("{port}\n"));
        assert!(!dir.path().join("svc.port.tmp").exists());

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let finished = Arc::new(AtomicBool::new(false));
        let seen = finished.clone();
        let running = tokio::spawn(server.serve_with(
            async {
                let _ = rx.await;
            },
            Some(move |mut stop: watch::Receiver<bool>| async move {
                let _ = stop.wait_for(|s| *s).await;
                seen.store(true, Ordering::SeqCst);
            }),
        ));
        let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
        tx.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert!(
            finished.load(Ordering::SeqCst),
            "the task was stopped and awaited"
        );
    }
}
