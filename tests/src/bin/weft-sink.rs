//! A minimal receiver for the black-box benchmark, in a process of its own:
//! answers every request 200 at once and counts them. `GET /count` (not
//! counted) tells how many arrived. Prints `listening on <port>` once ready.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening on {}", listener.local_addr().unwrap().port());
    let received = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let received = Arc::clone(&received);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let received = Arc::clone(&received);
                async move {
                    let counting = request.uri().path() != "/count";
                    let _ = request.into_body().collect().await;
                    let body = if counting {
                        received.fetch_add(1, Ordering::Relaxed);
                        Bytes::new()
                    } else {
                        Bytes::from(received.load(Ordering::Relaxed).to_string())
                    };
                    Ok::<_, hyper::Error>(Response::new(Full::new(body)))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
